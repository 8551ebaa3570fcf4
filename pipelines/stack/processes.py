"""Pid files and process control for the daemons the stack starts.

``down`` must stop only what ``up`` started: a pid file alone is not proof (pids are reused), so a recorded
process counts as ours only if its command line still carries the marker we launched it with.

Right after ``Popen`` returns, the child's command line can still read as empty: the parent resumes once the
child's exec has released the old image, before the kernel has set up the new one's arguments. A check in that
moment must wait for the arguments, not conclude the process is someone else's (it did, and a restarted broker was
reported as "exited during start-up" while it ran on, its pid file deleted).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

PROMETHEUS_DIR_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
"""prometheus_client's two names for the folder of its multiprocess metric files."""


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment for a process it starts, plus ``extra``, without the metrics folder Feast's
    import made for this process.

    Importing Feast points both :data:`PROMETHEUS_DIR_VARIABLES` at a temporary folder that it deletes when this
    process exits. A child inheriting them (the feature server, a Spark daemon, a job) keeps its metric files
    there and, once we have exited, fails with FileNotFoundError on the next metric it creates (reproduced in
    ``tests/unit/test_child_environment.py``). Without them each child decides for itself; a folder that was
    not Feast's own (set before this process started) is passed on. Feast's record of the folder is read from its
    ``feast.metrics`` module; if a Feast release stops keeping it, the environment is passed on unchanged, as
    before this function existed.
    """
    env = {**os.environ, **extra}
    feast_metrics = sys.modules.get("feast.metrics")
    owns = getattr(feast_metrics, "_owns_mp_dir", False) and getattr(feast_metrics, "_owner_pid", None) == os.getpid()
    folder = getattr(feast_metrics, "_prometheus_mp_dir", None)
    if owns and folder:
        for name in PROMETHEUS_DIR_VARIABLES:
            if env.get(name) == folder and name not in extra:
                del env[name]
    return env


EXEC_SETTLE_S = 2.0
"""How long an empty command line (a child still in exec) is waited out before the process counts as not ours."""


@dataclass(frozen=True)
class ManagedProcess:
    """A daemon identified by its pid file and a string its command line must contain."""

    name: str
    pid_file: Path
    cmdline_marker: str

    def pid(self) -> int | None:
        """The recorded pid if that process is alive and still ours, else None (stale files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            alive = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
            ours = alive and any(self.cmdline_marker in part for part in command_line(process))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            ours = False
        if not ours:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], *, log_file: Path, env: dict[str, str] | None = None) -> int:
        """Launch detached (own session, so a Ctrl-C in the CLI does not reach it) and record the pid; ``env``
        defaults to :func:`child_environment`."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env if env is not None else child_environment(),
            )
        self.pid_file.write_text(f"{process.pid}\n")
        _LAUNCHED[process.pid] = process
        return process.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, wait for a clean shutdown, SIGKILL if it does not come. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        process = psutil.Process(pid)
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)
        launched = _LAUNCHED.pop(pid, None)
        if launched is not None:
            launched.poll()  # psutil has reaped it; the Popen learns so and no longer counts it as running
        self.pid_file.unlink(missing_ok=True)
        return True


_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}
"""The daemons this interpreter started, by pid, until it stops them.

A daemon outlives the ``Popen`` that started it (``stack up`` exits and leaves it running). Dropping that object
while the child runs makes Python warn (``ResourceWarning: subprocess N is still running``), and whatever stops the
daemon in the same interpreter (the tests, ``demo``) would leave it unreaped. Kept here, the object lives as long as
the daemon is ours to stop, and :meth:`ManagedProcess.stop` hands it the exit after reaping.
"""


def command_line(process: psutil.Process, settle_s: float = EXEC_SETTLE_S) -> list[str]:
    """The process's arguments, waiting out the empty command line of a child whose exec is not finished."""
    deadline = time.monotonic() + settle_s
    while True:
        arguments = process.cmdline()
        if arguments or time.monotonic() >= deadline:
            return arguments
        time.sleep(0.005)


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on (host, port) or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(host: str, port: int, deadline: float) -> bool:
    """Poll until a TCP connect to (host, port) succeeds or the monotonic deadline passes."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_EPHEMERAL_RANGE = (32768, 60999)
LOWEST_TEST_PORT = 10000
"""Ports handed to private stacks are drawn from here up to the start of the ephemeral range."""

_handed_out: set[int] = set()


def ephemeral_port_range(source: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (Linux's default where it cannot be read)."""
    try:
        low, high = source.read_text(encoding="ascii").split()
        return int(low), int(high)
    except (OSError, ValueError):
        return LINUX_EPHEMERAL_RANGE


def private_port_candidates(size: int, ephemeral: tuple[int, int]) -> range:
    """First ports of the blocks of ``size`` that lie wholly outside the ephemeral range.

    Why outside it: a client that connects to a port of that range while nothing listens there yet (a KRaft node
    not started, a broker a test has killed) can be given that very port as its own source port and connect to
    itself (TCP self-connect). Kafka's raft client then reads its own request back as the response, fails with
    ``CorrelationIdMismatchException`` and the node exits; and the port stays taken when the server starts. Ports
    the OS hands out for ``bind(0)`` come from that same range, so they are not used.
    """
    low, high = ephemeral
    below, above = range(LOWEST_TEST_PORT, low - size + 1), range(high + 1, 65536 - size + 1)
    if len(below) >= len(above) and below:
        return below
    if above:
        return above
    # The ephemeral range covers every unprivileged port (some containers set 1024-65535): nothing is safe, so
    # take the whole range and live with the (rare) self-connect rather than refuse to start a test stack.
    return range(LOWEST_TEST_PORT, 65536 - size + 1)


def free_port_block(size: int = 1, host: str = "127.0.0.1", attempts: int = 500) -> int:
    """The first of ``size`` consecutive ports, all free now and outside the ephemeral range (for private stacks).

    Ports are drawn at random, so that separate processes rarely try the same ones, and never handed out twice in
    one process, so that two calls in a row cannot return the same port before either is bound.
    """
    candidates = private_port_candidates(size, ephemeral_port_range())
    for _ in range(attempts):
        base = random.choice(candidates)
        block = range(base, base + size)
        if _handed_out.intersection(block) or not all_bindable(host, block):
            continue
        _handed_out.update(block)
        return base
    raise RuntimeError(f"no block of {size} free ports found on {host} in {candidates.start}-{candidates.stop - 1}")


def all_bindable(host: str, ports: range) -> bool:
    """True if every port can be bound now (all held at once, so none is counted twice)."""
    probes: list[socket.socket] = []
    try:
        for port in ports:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for probe in probes:
            probe.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, outside the ephemeral range, and not handed out before (for private stacks)."""
    return free_port_block(1, host)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages; empty if there is none."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(content[-lines:])
