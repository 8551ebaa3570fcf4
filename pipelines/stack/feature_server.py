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
import time
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships with Feast, its stubs do not

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.feast_io.paths import feast_paths
from pipelines.stack.processes import ManagedProcess, child_environment, port_in_use, tail, wait_for_port


class FeatureServerStartError(FeaturestreamError):
    """The feature server did not come up; the message carries the reason and its log tail."""


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    url: str


def served_config(settings: Settings) -> dict[str, object]:
    """The feature_store.yaml the server runs on: the settings' paths, and the guarded store on SQLite."""
    from pipelines.feast_io.guarded_store import GUARDED_SQLITE_TYPE
    from pipelines.feast_io.store import repo_config

    config = repo_config(settings).model_dump(by_alias=True, exclude_unset=True, mode="json")
    config.pop("repo_path", None)
    if settings.feast.online_store == "sqlite":
        config["online_store"] = {"type": GUARDED_SQLITE_TYPE, "path": str(feast_paths(settings).online_db)}
    return config


class FeastFeatureServer:
    """Start, stop and inspect `feast serve` for the settings' feature store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack.state_dir / "feast" / "serving"
        self.config_file = self.root / "feature_store.yaml"
        self.log_file = self.root / "feature-server.log"
        self.process = ManagedProcess("feast-feature-server", self.root / "feature-server.pid", str(self.config_file))

    @property
    def host(self) -> str:
        return self.settings.stack.host

    @property
    def port(self) -> int:
        return self.settings.serving.feature_server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def status(self) -> ServerStatus:
        pid = self.process.pid()
        return ServerStatus(pid is not None, pid, self.url)

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

    def up(self) -> bool:
        """Start the server unless it runs; wait until /health answers. True if started now."""
        started = self.launch()
        self.wait_until_ready()
        return started

    def launch(self) -> bool:
        """Start the server unless it runs, without waiting (the stack starts its servers side by side)."""
        if self.process.pid() is not None:
            return False
        if port_in_use(self.host, self.port):
            raise FeatureServerStartError(
                f"port {self.port} on {self.host} is already in use: stop what holds it, or choose another with "
                "FEATURESTREAM_SERVING__FEATURE_SERVER_PORT"
            )
        if not feast_paths(self.settings).registry.is_file():
            raise FeatureServerStartError(
                f"no Feast registry at {feast_paths(self.settings).registry}: run `featurestream features apply`"
            )
        self.write_config()
        # Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), shared by every
        # server on the machine; XDG_RUNTIME_DIR moves it under this server's own folder.
        env = child_environment(XDG_RUNTIME_DIR=str(self.root))
        self.process.start(self.argv(), log_file=self.log_file, env=env)
        return True

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(served_config(self.settings), sort_keys=False)
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)

    def wait_until_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.settings.serving.start_timeout_s
        wait_for_port(self.host, self.port, deadline)
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise FeatureServerStartError(f"`feast serve` exited:\n{tail(self.log_file)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.process.stop()
        raise FeatureServerStartError(
            f"`feast serve` did not answer on {self.url}/health within {self.settings.serving.start_timeout_s:.0f}s:"
            f"\n{tail(self.log_file)}"
        )

    def down(self) -> bool:
        """Stop the server this stack started (by its pid file). True if one was running."""
        return self.process.stop()
