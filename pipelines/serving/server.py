"""Run the scoring app: in the foreground (`featurestream serve`) or as a stack process (`stack up`).

The stack process is ``featurestream serve --state-dir <state_dir>``: the state dir in its command line is the
mark `down` checks before stopping a pid (pids are reused), and the child reads every other setting from the
same environment and config file as the parent (less the metrics folder Feast made for the parent:
:func:`~pipelines.stack.processes.child_environment`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.http_server import ManagedHttpServer
from pipelines.stack.processes import ManagedProcess


class ScoreServerStartError(FeaturestreamError):
    """The scoring server did not come up; the message carries the reason and its log tail."""


def run_foreground(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn, one process, no access log: the hot path stays lean)."""
    import uvicorn

    from pipelines.serving.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="info")


class ScoreServer(ManagedHttpServer):
    """Start, stop and inspect the scoring endpoint of the settings' stack; ready when /health answers 200, with
    or without a model (no model is a state, not a failure)."""

    command = "`featurestream serve`"
    port_variable = "FEATURESTREAM_SERVING__SCORE_PORT"
    start_error = ScoreServerStartError

    def __init__(self, settings: Settings) -> None:
        self.root = settings.stack.state_dir / "serving"
        self.state_dir = str(settings.stack.state_dir.absolute())
        process = ManagedProcess("score-server", self.root / "score-server.pid", self.state_dir)
        super().__init__(settings, process, self.root / "score-server.log")

    @property
    def port(self) -> int:
        return self.settings.serving.score_port

    def argv(self) -> list[str]:
        cli = Path(sys.executable).with_name("featurestream")
        return [str(cli), "serve", "--host", self.host, "--port", str(self.port), "--state-dir", self.state_dir]

    def start(self) -> None:
        self.process.start(self.argv(), log_file=self.log_file)  # env: child_environment()
