"""The run log (write, read, old batch-log lines, crashes mid-line) and the HTML report it renders."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from pipelines.observability.errors import RunLogError
from pipelines.observability.histograms import LATENCY_BUCKETS, SCORE_BUCKETS, bucket_counts
from pipelines.observability.report import render_report, summary_rows
from pipelines.observability.run_log import (
    RunLogEntry,
    RunLogWriter,
    entry_from_batch,
    latest_per_batch,
    read_run_log,
)
from pipelines.streaming.batch_writer import BatchRecord

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FEATURES = ("card_amount_sum_1h", "card_txn_count_10m", "merchant_amount_mean_24h")


def a_run(batches: int = 16, seed: int = 5) -> list[RunLogEntry]:
    """A plausible run: traffic, dead letters, latency, scores, a feature drifting halfway, quality settling."""
    rng = np.random.default_rng(seed)
    entries = []
    for batch_id in range(batches):
        read = int(rng.integers(4000, 6000))
        reasons = {"invalid": int(rng.integers(20, 60)), "undecodable:garbage": int(rng.integers(0, 20))}
        if batch_id % 4 == 3:
            reasons["late"] = int(rng.integers(5, 15))
        dead = sum(reasons.values())
        latencies = rng.lognormal(0.5 + 0.05 * batch_id, 0.6, read - dead)
        scores = rng.beta(0.6, 12.0, read - dead)
        drifted = batch_id >= batches // 2
        record = BatchRecord(
            batch_id=batch_id,
            records_read=read,
            valid=read - dead,
            dead_lettered=dead,
            dead_letters_by_reason=reasons,
            scored=read - dead,
            model_version=2,
            seconds=float(rng.uniform(1.5, 3.0)),
            stage_seconds={"compute": 1.0},
        )
        entries.append(
            entry_from_batch(
                record,
                now=START + timedelta(seconds=5 * batch_id),
                model_name="fraud_xgb",
                latency_counts=bucket_counts(latencies, LATENCY_BUCKETS),
                score_counts=bucket_counts(scores, SCORE_BUCKETS),
                drift={
                    name: {
                        "psi": float(rng.uniform(0.3, 0.5) if drifted and i == 0 else rng.uniform(0.0, 0.05)),
                        "ks_statistic": 0.05,
                        "ks_pvalue": 0.3,
                        "drifting": 1.0 if drifted and i == 0 else 0.0,
                    }
                    for i, name in enumerate(FEATURES)
                },
                quality={
                    "labelled": 50 * (batch_id + 1),
                    "precision": 0.8 + 0.01 * (batch_id % 5),
                    "recall": 0.7,
                    "roc_auc": 0.95,
                },
                input_rows_per_second=float(read / 5),
            )
        )
    return entries


def test_the_run_log_round_trips_and_keeps_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "features" / "batches.jsonl"
    writer = RunLogWriter(path)
    entries = a_run(4)
    entries[0].extra["shadow_scored"] = 17
    for entry in entries:
        writer.append(entry)
    assert read_run_log(path) == entries
    assert entries[0].latency_seconds["p50"] is not None
    assert entries[0].finished_at == START


def test_batch_log_lines_written_before_the_extra_fields_still_read(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text(
        '{"batch_id": 0, "records_read": 10, "valid": 9, "dead_lettered": 1, '
        '"dead_letters_by_reason": {"late": 1}, "failed_expectations": {}, "seconds": 1.5}\n'
        '{"batch_id": 1, "records_read": 5, "valid": 5, "dead_lettered": 0, "seconds": 0.5}\n'
        '{"batch_id": 1, "records_read": 5, "valid": 5, "dead_lettered": 0, "seconds": 0.7}\n'
        '{"batch_id": 2, "records_re'  # the job died mid-line
    )
    entries = read_run_log(path)
    assert [e.batch_id for e in entries] == [0, 1, 1]
    assert entries[0].dead_letters_by_reason == {"late": 1} and entries[0].time is None
    assert entries[0].extra == {"failed_expectations": {}}
    assert [e.seconds for e in latest_per_batch(entries)] == [1.5, 0.7]  # a replayed batch counts once


def test_a_bad_line_inside_the_log_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text('{"batch_id": 0}\nnot json\n{"batch_id": 1}\n')
    with pytest.raises(RunLogError, match=r"batches.jsonl:2"):
        read_run_log(path)
    with pytest.raises(RunLogError, match="no run log"):
        read_run_log(tmp_path / "absent.jsonl")


def test_nan_never_reaches_the_json() -> None:
    entry = RunLogEntry(batch_id=1, quality={"precision": float("nan")}, drift={"a": {"psi": float("inf")}})
    assert "NaN" not in entry.to_json() and "Infinity" not in entry.to_json()
    assert RunLogEntry.from_dict(__import__("json").loads(entry.to_json())).quality == {"precision": None}


def ink(path: Path) -> float:
    """Share of pixels that are not (nearly) white: a plot with data has axes, lines and bars."""
    pixels = imread(path)[..., :3]
    return float((np.abs(pixels - 1.0).max(axis=-1) > 0.1).mean())


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_the_report_renders_every_plot_as_png_files_and_embedded(tmp_path: Path) -> None:
    entries = a_run()
    files = render_report(entries, tmp_path / "report", source=tmp_path / "batches.jsonl")
    assert files.html == tmp_path / "report" / "report.html"
    assert set(files.images) == {"throughput", "latency", "dead_letters", "scores", "drift", "quality"}
    page = files.html.read_text(encoding="utf-8")
    embedded = embedded_images(page)
    assert len(embedded) == 6
    for name, path in files.images.items():
        png = path.read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 15_000, name
        assert png in embedded, name
        pixels = imread(path)
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 800
        assert ink(path) > 0.03, f"{name}.png is nearly blank"
    assert "holds" in page  # conservation over the run
    assert "fraud_xgb v2" in page
    assert "card_amount_sum_1h" in page  # the feature that drifted is named in the summary


def test_the_summary_counts_each_batch_once() -> None:
    entries = a_run(3)
    replay = RunLogEntry.from_dict({**entries[1].__dict__})
    rows = dict(summary_rows([*entries, replay]))
    assert rows["records read"] == f"{sum(e.records_read for e in entries):,}"
    assert rows["log lines"] == "4 (1 replayed batches)"
    assert rows["conservation (read = valid + dead-lettered)"] == "holds"


def test_a_report_of_a_bare_batch_log_still_has_every_section(tmp_path: Path) -> None:
    entries = [RunLogEntry(batch_id=0, records_read=10, valid=10, seconds=1.0)]
    files = render_report(entries, tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert len(embedded_images(page)) == 6
    assert ink(files.images["throughput"]) > 0.015  # one batch is still a plot
    for name in ("latency", "dead_letters", "scores", "drift", "quality"):  # only a "no ... in this run log" line
        assert ink(files.images[name]) < 0.015, name
