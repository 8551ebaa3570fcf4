"""Run the scoring app: in the foreground (`featurestream serve`) or as a stack process (`stack up`).

The stack process is ``featurestream serve --state-dir <state_dir>``: the state dir in its command line is the
mark `down` checks before stopping a pid (pids are reused), and the child reads every other setting from the
same environment and config file as the parent (less the metrics folder Feast made for the parent:
:func:`~pipelines.stack.processes.child_environment`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.feature_server import ServerStatus
from pipelines.stack.processes import ManagedProcess, port_in_use, tail


class ScoreServerStartError(FeaturestreamError):
    """The scoring server did not come up; the message carries the reason and its log tail."""


def run_foreground(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn, one process, no access log: the hot path stays lean)."""
    import uvicorn

    from pipelines.serving.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="info")


class ScoreServer:
    """Start, stop and inspect the scoring endpoint of the settings' stack."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack.state_dir / "serving"
        self.log_file = self.root / "score-server.log"
        self.state_dir = str(settings.stack.state_dir.absolute())
        self.process = ManagedProcess("score-server", self.root / "score-server.pid", self.state_dir)

    @property
    def host(self) -> str:
        return self.settings.stack.host

    @property
    def port(self) -> int:
        return self.settings.serving.score_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def status(self) -> ServerStatus:
        pid = self.process.pid()
        return ServerStatus(pid is not None, pid, self.url)

    def argv(self) -> list[str]:
        cli = Path(sys.executable).with_name("featurestream")
        return [str(cli), "serve", "--host", self.host, "--port", str(self.port), "--state-dir", self.state_dir]

    def launch(self) -> bool:
        """Start the server unless it runs, without waiting. True if started now."""
        if self.process.pid() is not None:
            return False
        if port_in_use(self.host, self.port):
            raise ScoreServerStartError(
                f"port {self.port} on {self.host} is already in use: stop what holds it, or choose another with "
                "FEATURESTREAM_SERVING__SCORE_PORT"
            )
        self.process.start(self.argv(), log_file=self.log_file)  # env: child_environment()
        return True

    def up(self) -> bool:
        started = self.launch()
        self.wait_until_ready()
        return started

    def wait_until_ready(self) -> None:
        """Wait for /health to answer (200 with or without a model: no model is a state, not a failure)."""
        import httpx

        deadline = time.monotonic() + self.settings.serving.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise ScoreServerStartError(f"`featurestream serve` exited:\n{tail(self.log_file)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.process.stop()
        raise ScoreServerStartError(
            f"the scoring server did not answer on {self.url}/health within "
            f"{self.settings.serving.start_timeout_s:.0f}s:\n{tail(self.log_file)}"
        )

    def down(self) -> bool:
        return self.process.stop()
