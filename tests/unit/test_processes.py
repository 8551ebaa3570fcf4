from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil
import pytest

from pipelines.stack.processes import ManagedProcess, free_port, port_in_use, tail


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", free_port())


def test_managed_process_starts_identifies_and_stops_only_its_own(tmp_path: Path) -> None:
    marker = f"managed-{tmp_path.name}"
    process = ManagedProcess("sleeper", tmp_path / "sleeper.pid", marker)
    pid = process.start(
        [sys.executable, "-c", "import time, sys; time.sleep(60)", marker], log_file=tmp_path / "out.log"
    )
    assert process.pid() == pid
    other = ManagedProcess("other", tmp_path / "sleeper.pid", "some-other-marker")
    assert other.pid() is None  # a pid file alone is not proof: the command line must match
    process.pid_file.write_text(f"{pid}\n")
    assert process.stop(timeout_s=10)
    assert process.pid() is None
    assert not process.pid_file.exists()
    assert not process.stop()


def test_a_child_still_in_exec_is_not_taken_for_someone_elses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel shows an empty command line while the child's exec sets up its new image: wait, don't delete."""
    marker = f"in-exec-{tmp_path.name}"
    process = ManagedProcess("sleeper", tmp_path / "sleeper.pid", marker)
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)", marker], log_file=tmp_path / "out.log")
    real_cmdline = psutil.Process.cmdline
    reads = iter(range(1_000))

    def cmdline_in_exec(self: psutil.Process) -> list[str]:
        return [] if next(reads) < 3 else real_cmdline(self)

    monkeypatch.setattr(psutil.Process, "cmdline", cmdline_in_exec)
    try:
        assert process.pid() == pid
        assert process.pid_file.exists()
    finally:
        monkeypatch.undo()
        process.stop(timeout_s=10)


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("999999999\n")
    assert ManagedProcess("x", pid_file, "anything").pid() is None
    assert not pid_file.exists()


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail(log, 3) == "97\n98\n99"
    assert tail(tmp_path / "missing.log") == ""
