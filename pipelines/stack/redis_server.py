"""The stack's Redis online store: Debian's ``redis-server``, on loopback, data under ``<state_dir>/redis``.

Started by `featurestream stack up` when ``feast.online_store = "redis"`` and no existing Redis is named
(``feast.redis_connection_string``). Persistence is append-only (``appendfsync everysec``): a restarted stack
keeps its online features, and losing the last second on a machine crash is harmless because the online store
is rebuilt from the stream (the offline store keeps every event). Redis is not a JVM artifact, so it comes from
the system's packages (``apt-get install redis-server``), not from Maven Central.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.processes import ManagedProcess, port_in_use, tail

REDIS_PACKAGE = "redis-server"


class RedisStartError(FeaturestreamError):
    """redis-server is missing or did not come up; the message says which and shows its log tail."""


@dataclass(frozen=True)
class RedisStatus:
    running: bool
    pid: int | None
    address: str


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RedisStartError(
            f"redis-server not found: install Debian's package ({'apt-get install ' + REDIS_PACKAGE}), or point "
            "FEATURESTREAM_FEAST__REDIS_CONNECTION_STRING at an existing Redis"
        )
    return found


def render_redis_conf(*, host: str, port: int, data_dir: Path, log_file: Path) -> str:
    """redis.conf for a private, loopback-only server that keeps its data under the state directory."""
    lines = {
        "bind": host,
        "port": str(port),
        "protected-mode": "yes",
        "daemonize": "no",  # ManagedProcess detaches it and owns the pid
        "dir": str(data_dir),
        "logfile": str(log_file),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": '""',
        "maxmemory-policy": "noeviction",  # an evicted entity would silently lose its features
        # Redis rewrites its process title; keep the config file in it, the mark `down` checks before stopping.
        "proc-title-template": '"{title} {listen-addr} {config-file}"',
    }
    return "".join(f"{key} {value}\n" for key, value in lines.items())


class RedisServer:
    """Start, stop and inspect the stack's redis-server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack.state_dir / "redis"
        self.conf_file = self.root / "redis.conf"
        self.log_file = self.root / "redis.log"
        # The config file path stays in the process title, so a pid file can only match the server we started.
        self.process = ManagedProcess("redis-server", self.root / "redis.pid", str(self.conf_file))

    @property
    def address(self) -> str:
        return f"{self.settings.stack.host}:{self.settings.stack.redis_port}"

    @property
    def wanted(self) -> bool:
        """True if the settings ask for the stack's own Redis (Redis online store, no existing one named)."""
        feast = self.settings.feast
        return feast.online_store == "redis" and feast.redis_connection_string is None

    def status(self) -> RedisStatus:
        pid = self.process.pid()
        return RedisStatus(pid is not None, pid, self.address)

    def up(self) -> bool:
        """Start unless running; wait until it answers PING. True if started now."""
        running = self.process.pid()
        if running is not None:
            self._wait_until_ready(time.monotonic() + self.settings.stack.start_timeout_s, running)
            return False
        executable = find_redis_server()
        stack = self.settings.stack
        if port_in_use(stack.host, stack.redis_port):
            raise RedisStartError(
                f"port {stack.redis_port} on {stack.host} is already in use: stop what holds it, choose another "
                "port with FEATURESTREAM_STACK__REDIS_PORT, or use that Redis with "
                "FEATURESTREAM_FEAST__REDIS_CONNECTION_STRING"
            )
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(
            render_redis_conf(host=stack.host, port=stack.redis_port, data_dir=data, log_file=self.log_file)
        )
        pid = self.process.start([executable, str(self.conf_file)], log_file=self.root / "console.out")
        self._wait_until_ready(time.monotonic() + stack.start_timeout_s, pid)
        return True

    def down(self) -> bool:
        return self.process.stop()

    def _wait_until_ready(self, deadline: float, pid: int) -> None:
        """PING until it answers. Liveness is checked by pid alone: while redis-server rewrites its process
        title the command line may briefly lack the marker, and the pid file must not be dropped for that."""
        import psutil
        import redis

        client = redis.Redis(host=self.settings.stack.host, port=self.settings.stack.redis_port, socket_timeout=1.0)
        while time.monotonic() < deadline:
            try:
                alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                raise RedisStartError(self._failure("redis-server exited during start-up"))
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RedisStartError(self._failure(f"redis-server did not answer on {self.address} in time"))

    def _failure(self, reason: str) -> str:
        log = tail(self.log_file) or tail(self.root / "console.out")
        return f"{reason} (log {self.log_file}); last lines:\n{log}"
