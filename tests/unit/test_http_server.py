"""The lifecycle both stack HTTP servers share, on a real child process serving /health."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.http_server import ManagedHttpServer
from pipelines.stack.processes import ManagedProcess, free_port
from pipelines.testing import isolated_settings

# A tiny server: /health answers with the status given on its command line; "exit" ends at once instead.
HEALTH_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, status = int(sys.argv[1]), sys.argv[2]
if status == "exit":
    print("refusing to start: bad configuration", flush=True)
    sys.exit(3)
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(status) if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


class _StartError(FeaturestreamError):
    pass


class _HealthServer(ManagedHttpServer):
    command = "`health server`"
    port_variable = "HEALTH_SERVER_PORT"
    start_error = _StartError

    def __init__(self, settings: Settings, root: Path, port: int, status: str) -> None:
        self.marker = str(root / "health-server-marker")
        super().__init__(settings, ManagedProcess("health", root / "health.pid", self.marker), root / "health.log")
        self._port = port
        self.health_status = status
        self.starts = 0

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-c", HEALTH_SERVER, str(self.port), self.health_status, self.marker]
        self.process.start(argv, log_file=self.log_file)


def _settings(tmp_path: Path, timeout_s: float = 30.0) -> Settings:
    base = isolated_settings(tmp_path / "state")
    return base.model_copy(update={"serving": base.serving.model_copy(update={"start_timeout_s": timeout_s})})


def test_up_waits_for_health_then_a_second_up_finds_it_running_and_down_stops_it(tmp_path: Path) -> None:
    server = _HealthServer(_settings(tmp_path), tmp_path, free_port(), "200")
    try:
        assert server.up() is True
        status = server.status()
        assert status.running and status.pid is not None
        assert status.url == f"http://127.0.0.1:{server.port}"
        assert server.up() is False  # already running: not started twice
        assert server.starts == 1
    finally:
        assert server.down() is True
    assert not server.status().running
    assert server.down() is False


def test_a_port_held_by_another_process_is_refused_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = _HealthServer(_settings(tmp_path), tmp_path, port, "200")
        with pytest.raises(_StartError, match=f"port {port} on 127.0.0.1 is already in use.*HEALTH_SERVER_PORT"):
            server.launch()
    assert server.starts == 0


def test_a_server_that_exits_fails_at_once_with_its_log_not_at_the_deadline(tmp_path: Path) -> None:
    server = _HealthServer(_settings(tmp_path, timeout_s=60.0), tmp_path, free_port(), "exit")
    clock = time.monotonic()
    with pytest.raises(_StartError, match=r"(?s)`health server` exited:.*refusing to start: bad configuration"):
        server.up()
    assert time.monotonic() - clock < 30.0


def test_a_server_whose_health_never_answers_200_is_stopped_at_the_deadline(tmp_path: Path) -> None:
    server = _HealthServer(_settings(tmp_path, timeout_s=2.0), tmp_path, free_port(), "503")
    with pytest.raises(
        _StartError, match=r"`health server` did not answer on http://127\.0\.0\.1:\d+/health within 2s"
    ):
        server.up()
    assert not server.status().running  # stopped, not left behind
