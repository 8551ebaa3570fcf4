"""What every benchmark script's report says about where it ran, and how the report is emitted.

A figure is quoted with the machine it was measured on; one description, so reports of different scripts read the
same and can be compared.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import psutil


def machine_description() -> str:
    """Host name, logical cores and memory, e.g. ``"vm, 2 cores, 24 GiB"``."""
    return f"{platform.node()}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


def emit_report(report: dict[str, Any], json_path: Path | None) -> None:
    """Print the report as indented JSON and, when asked, write the same text to ``json_path``."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path is not None:
        json_path.write_text(text)
