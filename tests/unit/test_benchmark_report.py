"""The benchmark scripts' shared report helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.testing.benchmark_report import emit_report, machine_description


def test_the_machine_description_names_the_host_its_cores_and_memory() -> None:
    description = machine_description()
    host, cores, memory = description.split(", ")
    assert host
    assert cores == f"{os.cpu_count()} cores"
    assert memory.endswith(" GiB") and int(memory.removesuffix(" GiB")) > 0


def test_the_report_is_printed_and_written_as_the_same_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = {"p99_s": 1.94, "machine": "vm, 2 cores, 24 GiB"}
    written = tmp_path / "report.json"
    emit_report(report, written)
    printed = capsys.readouterr().out
    assert json.loads(printed) == report
    assert written.read_text() == printed.rstrip("\n")


def test_without_a_path_the_report_is_only_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emit_report({"events_per_s": 27_403}, None)
    assert json.loads(capsys.readouterr().out) == {"events_per_s": 27_403}
    assert not list(tmp_path.iterdir())
