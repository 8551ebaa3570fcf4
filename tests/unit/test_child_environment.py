"""Processes we start do not inherit the metrics folder Feast's import made for this process (and deletes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from pipelines.stack.processes import PROMETHEUS_DIR_VARIABLES, child_environment

FEAST_FOLDER = "/tmp/feast_metrics_test"


def _feast_metrics(monkeypatch: pytest.MonkeyPatch, *, owns: bool, owner_pid: int) -> None:
    """Feast's record of the folder, as its ``feast.metrics`` module keeps it, and the variables it set."""
    record = types.SimpleNamespace(_owns_mp_dir=owns, _owner_pid=owner_pid, _prometheus_mp_dir=FEAST_FOLDER)
    monkeypatch.setitem(sys.modules, "feast.metrics", record)
    for name in PROMETHEUS_DIR_VARIABLES:
        monkeypatch.setenv(name, FEAST_FOLDER)


def test_the_folder_feast_made_for_this_process_is_not_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _feast_metrics(monkeypatch, owns=True, owner_pid=os.getpid())
    monkeypatch.setenv("FEATURESTREAM_SOMETHING", "kept")
    env = child_environment(EXTRA="1")
    assert not set(PROMETHEUS_DIR_VARIABLES) & set(env)
    assert env["FEATURESTREAM_SOMETHING"] == "kept"
    assert env["EXTRA"] == "1"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == FEAST_FOLDER  # this process keeps its own


def test_a_folder_feast_did_not_make_here_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _feast_metrics(monkeypatch, owns=False, owner_pid=os.getpid())  # set before the process started
    assert {child_environment()[name] for name in PROMETHEUS_DIR_VARIABLES} == {FEAST_FOLDER}
    _feast_metrics(monkeypatch, owns=True, owner_pid=os.getpid() + 1)  # a forked worker of the folder's owner
    assert {child_environment()[name] for name in PROMETHEUS_DIR_VARIABLES} == {FEAST_FOLDER}


def test_an_explicit_folder_for_the_child_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    _feast_metrics(monkeypatch, owns=True, owner_pid=os.getpid())
    assert child_environment(PROMETHEUS_MULTIPROC_DIR=FEAST_FOLDER)["PROMETHEUS_MULTIPROC_DIR"] == FEAST_FOLDER


def test_without_feast_imported_the_environment_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "feast.metrics", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", FEAST_FOLDER)
    assert child_environment()["PROMETHEUS_MULTIPROC_DIR"] == FEAST_FOLDER


def test_the_installed_feast_still_keeps_the_record_this_relies_on() -> None:
    """If a Feast upgrade drops it, children would inherit the folder again: fail here instead."""
    import feast.metrics

    for name in ("_owns_mp_dir", "_owner_pid", "_prometheus_mp_dir"):
        assert hasattr(feast.metrics, name), name


PARENT = """
import subprocess, sys
import pipelines, feast
from pipelines.stack.processes import child_environment
import feast.metrics
env = child_environment() if sys.argv[1] == "child_environment" else None
subprocess.Popen([sys.executable, "-c", sys.argv[2], feast.metrics._prometheus_mp_dir, sys.argv[3]], env=env)
"""
CHILD = """
import os, sys, time
folder, result = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 30
while os.path.exists(folder) and time.monotonic() < deadline:  # the parent deletes it when it exits
    time.sleep(0.05)
try:
    from prometheus_client import Counter
    Counter("requests", "A metric created after the parent has gone.").inc()
    outcome = "created" if not os.path.exists(folder) else "parent still running"
except Exception as exc:
    outcome = type(exc).__name__
with open(result + ".tmp", "w") as out:
    out.write(outcome)
os.rename(result + ".tmp", result)
"""


def _child_outcome(tmp_path: Path, how: str) -> str:
    result = tmp_path / f"{how}.txt"
    # The parent starts as a command would: its Feast import makes (and on exit deletes) its own folder. This test
    # process may have imported Feast already, and its folder must not reach the parent.
    clean = {name: value for name, value in os.environ.items() if name not in PROMETHEUS_DIR_VARIABLES}
    subprocess.run([sys.executable, "-c", PARENT, how, CHILD, str(result)], check=True, timeout=120, env=clean)
    deadline = time.monotonic() + 90
    while not result.exists():
        assert time.monotonic() < deadline, "the child never reported"
        time.sleep(0.1)
    return result.read_text()


def test_a_child_outliving_its_parent_can_still_create_metrics(tmp_path: Path) -> None:
    """The failure this prevents, reproduced: inheriting the environment as is, the child's first metric after its
    parent exits fails; with :func:`child_environment` it is created."""
    assert _child_outcome(tmp_path, "inherited") == "FileNotFoundError"
    assert _child_outcome(tmp_path, "child_environment") == "created"
