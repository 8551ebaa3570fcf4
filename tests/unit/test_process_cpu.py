from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.testing.process_cpu import (
    BROKER,
    DRIVER,
    OTHER,
    PYTHON_WORKERS,
    SPARK_JVM,
    CpuMeter,
    average_cores,
    component_of,
)


def test_components_by_pid_then_executable() -> None:
    assert component_of("python3.11", is_driver=True, is_broker=False) == DRIVER
    assert component_of("java", is_driver=False, is_broker=True) == BROKER
    assert component_of("java", is_driver=False, is_broker=False) == SPARK_JVM
    assert component_of("python", is_driver=False, is_broker=False) == PYTHON_WORKERS
    assert component_of("sh", is_driver=False, is_broker=False) == OTHER


def test_a_busy_child_is_counted_and_cpu_spent_before_start_is_not() -> None:
    meter = CpuMeter(interval_s=0.05)
    meter.start()
    busy = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", busy], check=True)  # ends before stop(): its last sample must count
    seconds = meter.stop()
    assert 0.4 <= seconds[PYTHON_WORKERS] <= 1.5
    assert seconds["total"] >= seconds[PYTHON_WORKERS]
    assert seconds.get(DRIVER, 0.0) < 5.0  # this process's CPU before start() (imports, other tests) is excluded


def test_average_cores_are_cpu_seconds_over_the_wall_time() -> None:
    assert average_cores({PYTHON_WORKERS: 30.0, SPARK_JVM: 15.0, "total": 45.0}, 30.0) == {
        PYTHON_WORKERS: 1.0,
        SPARK_JVM: 0.5,
        "total": 1.5,
    }
    with pytest.raises(ValueError, match="positive"):
        average_cores({PYTHON_WORKERS: 1.0}, 0.0)
