from __future__ import annotations

import gc
import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

from pipelines.stack.processes import (
    ManagedProcess,
    all_bindable,
    ephemeral_port_range,
    free_port,
    free_port_block,
    port_in_use,
    private_port_candidates,
    tail,
)


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", free_port())


def test_private_ports_lie_outside_the_range_clients_take_source_ports_from() -> None:
    """A client connecting to an unbound port of the ephemeral range can connect to itself: never use one."""
    low, high = ephemeral_port_range()
    ports = [free_port() for _ in range(50)]
    assert all(not low <= port <= high for port in ports)
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    assert all(not port_in_use("127.0.0.1", port) for port in ports)


def test_a_port_block_is_free_and_wholly_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_port_range()
    base = free_port_block(6)
    block = range(base, base + 6)
    assert all(not low <= port <= high for port in block)
    assert all_bindable("127.0.0.1", block)


def test_a_port_block_is_not_handed_out_while_one_of_its_ports_is_taken() -> None:
    base = free_port_block(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))
        assert not all_bindable("127.0.0.1", range(base, base + 2))


def test_candidates_skip_above_the_ephemeral_range_when_none_fit_below_it() -> None:
    assert private_port_candidates(4, (32768, 60999)) == range(10000, 32765)
    assert private_port_candidates(4, (1024, 60999)) == range(61000, 65533)
    assert private_port_candidates(1, (1024, 65535)) == range(10000, 65536), "no safe port: still some port"


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaults(tmp_path: Path) -> None:
    source = tmp_path / "ip_local_port_range"
    source.write_text("40000\t50000\n")
    assert ephemeral_port_range(source) == (40000, 50000)
    assert ephemeral_port_range(tmp_path / "missing") == (32768, 60999)


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


@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_a_daemon_started_and_stopped_in_one_interpreter_leaves_no_running_popen_behind(tmp_path: Path) -> None:
    """Python warns when a ``Popen`` of a running child is dropped; started and stopped here, none may be."""
    marker = f"reaped-{tmp_path.name}"
    process = ManagedProcess("sleeper", tmp_path / "sleeper.pid", marker)
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)", marker], log_file=tmp_path / "out.log")
    gc.collect()  # a Popen dropped by start() would warn here, while its child runs
    assert process.stop(timeout_s=10)
    gc.collect()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left for the interpreter's exit


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
