"""Feast's own feature server (`feast serve`: /get-online-features, /push, /health) as a stack process.

`featurestream stack up` starts it on ``stack.host`` (loopback) and ``serving.feature_server_port``; `down`
stops it by its pid file. Feast reads its configuration from a ``feature_store.yaml``; the one in features/
holds paths for the default state dir only, so a resolved copy, with the settings' registry and online store,
is written to ``<state_dir>/feast/serving/feature_store.yaml`` (mode 0600: a Redis URL may carry a password)
and the server is started as ``feast -c features -f <that file> serve``. On SQLite the copy names the guarded
store (:mod:`pipelines.feast_io.guarded_store`), so /push never takes a value back in time.

Two `feast serve` defaults are changed on purpose:

- ``--max-requests 0``: Feast's default (1000) makes gunicorn recycle the worker every 1000 requests, every
  5 s at 200 requests/s; a fresh worker spends seconds importing Feast, and every request waits for it.
- ``--registry_ttl_sec``: ``serving.registry_refresh_s`` (the registry is re-read in the background; requests
  always use the cached copy).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships with Feast, its stubs do not

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.feast_io.paths import feast_paths
from pipelines.stack.http_server import ManagedHttpServer
from pipelines.stack.processes import ManagedProcess, child_environment


class FeatureServerStartError(FeaturestreamError):
    """The feature server did not come up; the message carries the reason and its log tail."""


def served_config(settings: Settings) -> dict[str, object]:
    """The feature_store.yaml the server runs on: the settings' paths, and the guarded store on SQLite."""
    from pipelines.feast_io.guarded_store import GUARDED_SQLITE_TYPE
    from pipelines.feast_io.store import repo_config

    config = repo_config(settings).model_dump(by_alias=True, exclude_unset=True, mode="json")
    config.pop("repo_path", None)
    if settings.feast.online_store == "sqlite":
        config["online_store"] = {"type": GUARDED_SQLITE_TYPE, "path": str(feast_paths(settings).online_db)}
    return config


class FeastFeatureServer(ManagedHttpServer):
    """Start, stop and inspect `feast serve` for the settings' feature store."""

    command = "`feast serve`"
    port_variable = "FEATURESTREAM_SERVING__FEATURE_SERVER_PORT"
    start_error = FeatureServerStartError

    def __init__(self, settings: Settings) -> None:
        self.root = settings.stack.state_dir / "feast" / "serving"
        self.config_file = self.root / "feature_store.yaml"
        process = ManagedProcess("feast-feature-server", self.root / "feature-server.pid", str(self.config_file))
        super().__init__(settings, process, self.root / "feature-server.log")

    @property
    def port(self) -> int:
        return self.settings.serving.feature_server_port

    def argv(self) -> list[str]:
        serving = self.settings.serving
        feast_cli = Path(sys.executable).with_name("feast")
        return [
            str(feast_cli),
            "-c",
            str(self.settings.feast.repo_path.absolute()),
            "-f",
            str(self.config_file),
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(serving.feature_server_workers),
            "--max-requests",
            "0",
            "--registry_ttl_sec",
            str(serving.registry_refresh_s),
            "--no-access-log",
        ]

    def start(self) -> None:
        if not feast_paths(self.settings).registry.is_file():
            raise FeatureServerStartError(
                f"no Feast registry at {feast_paths(self.settings).registry}: run `featurestream features apply`"
            )
        self.write_config()
        # Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), shared by every
        # server on the machine; XDG_RUNTIME_DIR moves it under this server's own folder.
        env = child_environment(XDG_RUNTIME_DIR=str(self.root))
        self.process.start(self.argv(), log_file=self.log_file, env=env)

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(served_config(self.settings), sort_keys=False)
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
