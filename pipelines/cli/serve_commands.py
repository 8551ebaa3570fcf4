"""`featurestream serve`: the request-time scoring endpoint (POST /score) in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.console import console
from pipelines.config import load_settings


def serve_command(
    host: Annotated[str | None, typer.Option(help="Interface to listen on; default stack.host (loopback).")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default serving.score_port.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Serve this state dir's Feast store and model registry (default stack's).")
    ] = None,
) -> None:
    """Serve POST /score (OpenAPI at /docs) until interrupted: online features + the production model."""
    from pipelines.serving.server import run_foreground

    settings = load_settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"stack": settings.stack.model_copy(update={"state_dir": state_dir})})
    host = host or settings.stack.host
    port = port or settings.serving.score_port
    console.print(f"scoring on http://{host}:{port}/score (OpenAPI: http://{host}:{port}/docs)")
    run_foreground(settings, host, port)
