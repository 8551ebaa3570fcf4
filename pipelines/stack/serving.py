"""The stack's two HTTP servers, started side by side by `stack up` and stopped by `stack down`:
Feast's feature server (:mod:`pipelines.stack.feature_server`) and the scoring endpoint
(:mod:`pipelines.serving.server`). Each can be turned off (``serving.feature_server_enabled``,
``serving.score_server_enabled``)."""

from __future__ import annotations

import time

from pipelines.config import Settings
from pipelines.feast_io.paths import feast_paths
from pipelines.stack.feature_server import FeastFeatureServer
from pipelines.stack.http_server import ManagedHttpServer


def _servers(settings: Settings) -> list[tuple[str, ManagedHttpServer]]:
    from pipelines.serving.server import ScoreServer

    servers: list[tuple[str, ManagedHttpServer]] = []
    if settings.serving.feature_server_enabled:
        servers.append(("feast feature server", FeastFeatureServer(settings)))
    if settings.serving.score_server_enabled:
        servers.append(("scoring endpoint", ScoreServer(settings)))
    return servers


def serving_up(settings: Settings) -> list[str]:
    """Start the enabled servers (applying features/ first if Feast has no registry yet); one line per server."""
    servers = _servers(settings)
    lines = []
    if servers and not feast_paths(settings).registry.is_file():
        from pipelines.feast_io.store import apply_repo

        apply_repo(settings)
        lines.append(f"applied the Feast repository {settings.feast.repo_path} (no registry yet)")
    started_at = time.monotonic()
    launched = [(name, server, server.launch()) for name, server in servers]
    for name, server, started in launched:
        server.wait_until_ready()
        pid = server.status().pid
        if started:
            lines.append(f"[green]{name} up[/] on {server.url} in {time.monotonic() - started_at:.1f}s (pid {pid})")
        else:
            lines.append(f"{name} already running on {server.url} (pid {pid})")
    return lines


def serving_down(settings: Settings) -> list[str]:
    """Stop the servers this stack started (by pid file), whatever the enabled flags say now."""
    from pipelines.serving.server import ScoreServer

    lines = []
    for name, server in (
        ("scoring endpoint", ScoreServer(settings)),
        ("feast feature server", FeastFeatureServer(settings)),
    ):
        if server.down():
            lines.append(f"[green]{name} stopped[/]")
    return lines


def serving_status(settings: Settings) -> list[tuple[str, str, str]]:
    """(component, state, where) rows for `stack status`."""
    rows = []
    for name, server in _servers(settings):
        status = server.status()
        state = f"[green]running[/] (pid {status.pid})" if status.running else "[red]stopped[/]"
        rows.append((name, state, status.url))
    return rows
