"""Shared terminal output for CLI commands."""

from __future__ import annotations

from rich.console import Console

console = Console()
errors = Console(stderr=True)
