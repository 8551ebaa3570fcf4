"""What the stack's HTTP servers share: Feast's feature server and the scoring endpoint.

Each runs as a pid-file process (:class:`~pipelines.stack.processes.ManagedProcess`). `stack up` launches them
side by side, then waits for each. Launching refuses a port that another process holds, and names the setting that
moves it. A server is ready when ``/health`` answers 200. Waiting fails with the tail of the server's log as soon
as its process exits, rather than at the deadline, and fails the same way if it does not answer in time.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.processes import ManagedProcess, port_in_use, tail

POLL_S = 0.2


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    url: str


class ManagedHttpServer(ABC):
    """Start, wait for, inspect and stop one HTTP server of the settings' stack.

    A subclass names itself for messages (``command``), the environment variable that moves its port
    (``port_variable``) and its error type (``start_error``). It also gives its ``port`` and ``start``, which
    launches the process.
    """

    command: ClassVar[str]
    port_variable: ClassVar[str]
    start_error: ClassVar[type[FeaturestreamError]]

    def __init__(self, settings: Settings, process: ManagedProcess, log_file: Path) -> None:
        self.settings = settings
        self.process = process
        self.log_file = log_file

    @property
    def host(self) -> str:
        return self.settings.stack.host

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def status(self) -> ServerStatus:
        pid = self.process.pid()
        return ServerStatus(pid is not None, pid, self.url)

    @abstractmethod
    def start(self) -> None:
        """Launch the process (it is not running and its port is free)."""

    def launch(self) -> bool:
        """Start the server unless it runs, without waiting. True if started now."""
        if self.process.pid() is not None:
            return False
        if port_in_use(self.host, self.port):
            raise self.start_error(
                f"port {self.port} on {self.host} is already in use: stop what holds it, or choose another with "
                f"{self.port_variable}"
            )
        self.start()
        return True

    def up(self) -> bool:
        """Start the server unless it runs; wait until /health answers. True if started now."""
        started = self.launch()
        self.wait_until_ready()
        return started

    def wait_until_ready(self) -> None:
        """Wait for /health to answer 200; stop the process and raise if it does not in time."""
        import httpx

        timeout_s = self.settings.serving.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise self.start_error(f"{self.command} exited:\n{tail(self.log_file)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL_S)
        self.process.stop()
        raise self.start_error(
            f"{self.command} did not answer on {self.url}/health within {timeout_s:.0f}s:\n{tail(self.log_file)}"
        )

    def down(self) -> bool:
        """Stop the server this stack started (by its pid file). True if one was running."""
        return self.process.stop()
