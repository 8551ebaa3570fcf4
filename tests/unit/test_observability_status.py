"""`featurestream status` and `featurestream report`: what a scrape or a run log shows, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.cli.observe_commands import NOTHING_RUNNING, render_status
from pipelines.observability.drift import DriftReport, DriftResult
from pipelines.observability.metrics import PipelineMetrics
from pipelines.observability.quality import quality_of
from pipelines.observability.run_log import RunLogEntry, RunLogWriter
from pipelines.observability.status import status_from_exposition, status_from_run_log
from pipelines.stack.processes import free_port

PROGRESS = {
    "name": "features",
    "batchId": 2,
    "inputRowsPerSecond": 3000.0,
    "processedRowsPerSecond": 2400.0,
    "stateOperators": [
        {"operatorName": "transformWithStateInPandasExec", "numRowsTotal": 128, "memoryUsedBytes": 4096}
    ],
    "sources": [
        {
            "endOffset": {"transactions": {"0": 2000, "1": 2100, "2": 1900}},
            "latestOffset": {"transactions": {"0": 2500, "1": 2100, "2": 5000}},
        }
    ],
}
# Two batches: 12,000 read = 11,640 valid + 360 dead-lettered.
BATCHES = [
    (7000, 6800, {"invalid": 100, "undecodable:garbage": 50, "late": 50}),
    (5000, 4840, {"invalid": 60, "undecodable:garbage": 40, "late": 60}),
]


def running_metrics() -> PipelineMetrics:
    metrics = PipelineMetrics("features")
    metrics.set_query_active("features", True)
    for batch_id, (read, valid, dead) in enumerate(BATCHES):
        metrics.record_batch(
            batch_id,
            read=read,
            valid=valid,
            dead_lettered_by_reason=dead,
            online_rows={},
            offline_rows={},
            scores_published=valid,
            duration_s=1.0,
        )
    metrics.observe_progress(PROGRESS)
    metrics.set_model_version("fraud_xgb", 3)
    metrics.observe_drift(
        DriftReport(
            results=(
                DriftResult("amount", 2000, True, psi=0.31, drifting=True, reasons=("psi",)),
                DriftResult("count", 2000, True, psi=0.02),
            ),
            crossed=(),
            recovered=(),
        )
    )
    metrics.set_live_quality(quality_of([True, False, True, False], [0.9, 0.8, 0.2, 0.1], [True, True, False, False]))
    return metrics


def text_of(status: object) -> str:
    console = Console(record=True, width=200)
    console.print(render_status(status))  # type: ignore[arg-type]
    return console.export_text()


def test_status_reads_the_pipeline_out_of_a_scrape() -> None:
    status = status_from_exposition(running_metrics().exposition().decode(), source="test")
    query = status.queries["features"]
    assert (query.active, query.records_read, query.valid, query.scores) == (True, 12_000, 11_640, 11_640)
    assert (query.batches, query.last_batch_id, query.input_rate, query.state_rows) == (2, 1, 3000.0, 128)
    assert status.dead_letters == {"invalid": 160, "undecodable:garbage": 90, "late": 110}
    assert status.lag == {("transactions", 0): 500, ("transactions", 1): 0, ("transactions", 2): 3100}
    assert status.total_lag == 3600
    assert status.models == {"fraud_xgb": 3}
    assert status.drift == {"amount": (pytest.approx(0.31), True), "count": (pytest.approx(0.02), False)}
    assert status.quality["precision"] == 0.5 and status.quality["labelled"] == 4

    shown = text_of(status)
    for expected in (
        "features",
        "active",
        "12,000",
        "transactions[2]",
        "3,600",
        "undecodable:garbage",
        "v3",
        "DRIFTING",
    ):
        assert expected in shown


def test_status_from_a_run_log_totals_its_batches() -> None:
    entries = [
        RunLogEntry(batch_id=0, records_read=10, valid=8, dead_letters_by_reason={"invalid": 2}, scored=8),
        RunLogEntry(
            batch_id=1,
            records_read=5,
            valid=5,
            scored=5,
            model_name="fraud_xgb",
            model_version=2,
            drift={"amount": {"psi": 0.4, "drifting": 1.0}},
            quality={"labelled": 9, "precision": 0.5},
        ),
        RunLogEntry(batch_id=2),  # a batch with nothing in it: no model named, the last one still shown
    ]
    status = status_from_run_log(entries, "log")
    query = status.queries["(run log)"]
    assert (query.records_read, query.valid, query.scores, query.last_batch_id) == (15, 13, 13, 2)
    assert status.dead_letters == {"invalid": 2}
    assert status.models == {"fraud_xgb": 2}
    assert status.drift == {"amount": (0.4, True)}
    assert status.quality == {"labelled": 9.0, "precision": 0.5}


def test_the_status_command_says_when_nothing_runs(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    result = CliRunner().invoke(app, ["status", "--url", url, "--run-log", str(tmp_path / "none.jsonl")])
    assert result.exit_code == NOTHING_RUNNING, result.output
    assert "nothing is running" in result.output and "no run log" in result.output

    log = tmp_path / "batches.jsonl"
    RunLogWriter(log).append(RunLogEntry(batch_id=0, records_read=7, valid=7))
    result = CliRunner().invoke(app, ["status", "--url", url, "--run-log", str(log)])
    assert result.exit_code == NOTHING_RUNNING
    assert "(run log)" in result.output


def test_the_status_command_shows_a_running_job() -> None:
    server = running_metrics().serve(free_port())
    try:
        result = CliRunner().invoke(app, ["status", "--url", server.url])
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert "features" in result.output and "fraud_xgb" in result.output


def test_the_report_command_writes_the_report_and_prints_its_path(tmp_path: Path) -> None:
    log = tmp_path / "batches.jsonl"
    log.write_text(json.dumps({"batch_id": 0, "records_read": 10, "valid": 9, "dead_lettered": 1, "seconds": 1}) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--run-log", str(log)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and len(list(out.glob("*.png"))) == 6
    assert "report.html" in result.output.replace("\n", "")

    missing = CliRunner().invoke(app, ["report", "--run-log", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0
    assert isinstance(missing.exception, Exception) and "no run log" in str(missing.exception)
