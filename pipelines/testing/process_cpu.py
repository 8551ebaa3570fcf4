"""CPU seconds per component of a local run (broker, Spark's JVM, Python workers, the driver's Python).

On one 2-core machine every component competes for the same cores, so a benchmark's events/s alone does not
say where the time goes. :class:`CpuMeter` samples the CPU time of the driver process, its descendants (Spark's
JVM, which forks the Python worker daemon and its workers) and the broker while a block runs, and reports each
component's CPU seconds accrued in that block. Workers come and go (a task may end its worker); the last sample of
an ended process is kept, so at most one sampling interval of an ended process's CPU is missed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import psutil

SAMPLE_INTERVAL_S = 0.5
DRIVER = "driver_python"
BROKER = "broker"
SPARK_JVM = "spark_jvm"
PYTHON_WORKERS = "python_workers"
OTHER = "other_children"


def component_of(process_name: str, *, is_driver: bool, is_broker: bool) -> str:
    """Which component a process belongs to: the driver and broker by pid, descendants by executable."""
    if is_driver:
        return DRIVER
    if is_broker:
        return BROKER
    if process_name.startswith("java"):
        return SPARK_JVM
    if process_name.startswith("python"):
        return PYTHON_WORKERS
    return OTHER


@dataclass
class CpuMeter:
    """Samples in a background thread between :meth:`start` and :meth:`stop`."""

    broker_pid: int | None = None
    interval_s: float = SAMPLE_INTERVAL_S
    _baseline: dict[int, float] = field(default_factory=dict, init=False)
    _latest: dict[int, tuple[str, float]] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        """CPU already spent by processes alive now does not count."""
        for pid, (_, seconds) in self._sample().items():
            self._baseline[pid] = seconds
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per component since :meth:`start`, and their total."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._latest.update(self._sample())
        totals: dict[str, float] = {}
        for pid, (component, seconds) in self._latest.items():
            totals[component] = totals.get(component, 0.0) + seconds - self._baseline.get(pid, 0.0)
        rounded = {component: round(seconds, 1) for component, seconds in sorted(totals.items())}
        rounded["total"] = round(sum(totals.values()), 1)
        return rounded

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._latest.update(self._sample())

    def _sample(self) -> dict[int, tuple[str, float]]:
        driver = psutil.Process(os.getpid())
        processes = [driver, *driver.children(recursive=True)]
        if self.broker_pid is not None and psutil.pid_exists(self.broker_pid):
            processes.append(psutil.Process(self.broker_pid))
        sample: dict[int, tuple[str, float]] = {}
        for process in processes:
            try:
                times = process.cpu_times()
                name = process.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            component = component_of(
                name, is_driver=process.pid == driver.pid, is_broker=process.pid == self.broker_pid
            )
            sample[process.pid] = (component, times.user + times.system)
        return sample


def average_cores(cpu_seconds: dict[str, float], wall_s: float) -> dict[str, float]:
    """CPU seconds per component (as :meth:`CpuMeter.stop` returns them) as the cores each kept busy on average
    over ``wall_s``: next to the machine's core count, whether a run was short of CPU or waiting."""
    if wall_s <= 0:
        raise ValueError(f"wall time must be positive, got {wall_s}")
    return {component: round(seconds / wall_s, 2) for component, seconds in cpu_seconds.items()}
