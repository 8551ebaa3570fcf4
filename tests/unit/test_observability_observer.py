"""Per-partition observations and the observer the batch writer calls: a known run end to end, with fakes for
Kafka (alerts, quality feed) and the real metrics, drift monitor and run log."""

from __future__ import annotations

import gc
import json
import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import Settings
from pipelines.observability import metrics as m
from pipelines.observability.alerts import Alert
from pipelines.observability.batch_observations import (
    PartitionObservations,
    merge_observations,
    observe_partition,
)
from pipelines.observability.drift import baseline_path, build_baseline, save_baseline
from pipelines.observability.histograms import LATENCY_BUCKETS, SCORE_BUCKETS, bucket_counts
from pipelines.observability.metrics import PipelineMetrics
from pipelines.observability.observer import StreamObserver
from pipelines.observability.quality import LiveQuality, QualitySnapshot
from pipelines.observability.run_log import RunLogWriter, read_run_log

FEATURES = ["amount", "txn_count_1h"]


def test_a_partition_summary_adds_up_like_the_whole_batch() -> None:
    rng = np.random.default_rng(0)
    event_ms = rng.integers(0, 60_000, 1000)
    scores = rng.beta(0.6, 12, 1000)
    amounts = rng.lognormal(3, 1, 1000)
    amounts[:10] = np.nan
    halves = [
        observe_partition(event_ms[s], 90_000, scores[s], {"amount": amounts[s]}, sample_rows=100, seed=i)
        for i, s in enumerate((slice(0, 400), slice(400, 1000)))
    ]
    travelled = [PartitionObservations.from_json(part.to_json()) for part in halves]  # JSON with the stats row
    batch = merge_observations(travelled)
    latencies = (90_000 - event_ms) / 1000
    assert batch.rows == 1000
    assert batch.latency_counts == bucket_counts(latencies, LATENCY_BUCKETS)
    assert batch.latency_sum_s == pytest.approx(latencies.sum())
    assert batch.score_counts == bucket_counts(scores, SCORE_BUCKETS)
    assert batch.features["amount"].size == 200 and batch.scores.size == 200
    assert np.isnan(batch.features["amount"]).sum() <= 10  # missing values travel as null, come back as NaN
    small = observe_partition([1000], 3000, [0.5], {"amount": [float("nan")]})
    assert small.sample == {"score": [0.5], "amount": [None]} and small.latency_sum_s == 2.0
    with pytest.raises(ValueError, match="values for"):
        observe_partition([1, 2], 3, [0.1, 0.2], {"amount": [1.0]})
    empty = merge_observations([])
    assert empty.rows == 0 and sum(empty.latency_counts) == 0


@dataclass
class Batch:
    batch_id: int
    records_read: int
    valid: int
    dead_letters_by_reason: dict[str, int]
    scored: int
    seconds: float = 1.0
    online_written: dict[str, int] = field(default_factory=dict)
    offline_rows: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Alert] = []

    def publish(self, alerts: list[Alert]) -> int:
        self.published.extend(alerts)
        return len(alerts)


class FakeFeed:
    def __init__(self, quality: LiveQuality, batches: list[tuple[list[str], list[float], list[bool], list[bool]]]):
        self.quality = quality
        self.batches = batches
        self.closed = False

    def poll(self, max_messages: int = 50_000, timeout_s: float = 0.0) -> int:
        if not self.batches:
            return 0
        ids, scores, alerts, labels = self.batches.pop(0)
        self.quality.add_scores(ids, scores, alerts)
        self.quality.add_labels(ids, labels)
        return 2 * len(ids)

    def snapshot(self) -> QualitySnapshot:
        self.poll()
        return self.quality.snapshot()

    def close(self) -> None:
        self.closed = True


def frame(rows: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.5, 1.0, rows) * scale,
            "txn_count_1h": rng.poisson(1.5, rows).astype(float),
            "score": rng.beta(0.6, 12.0, rows),
            "event_ms": rng.integers(0, 10_000, rows),
        }
    )


def observed(rows: int, seed: int, scale: float = 1.0) -> list[PartitionObservations]:
    data = frame(rows, seed, scale)
    halves = (data.iloc[: rows // 2], data.iloc[rows // 2 :])
    return [
        observe_partition(
            part["event_ms"], 20_000, part["score"], {f: part[f] for f in FEATURES}, sample_rows=200, seed=seed + i
        )
        for i, part in enumerate(halves)
    ]


def test_the_observer_counts_a_known_run_alerts_once_on_drift_and_logs_every_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(observability={"drift_window": 2000, "drift_min_samples": 800})
    training = frame(10_000, seed=1)
    version_dir = tmp_path / "versions" / "4"
    save_baseline(build_baseline(training, FEATURES, training["score"]), baseline_path(version_dir))
    publisher = FakePublisher()
    feed = FakeFeed(
        LiveQuality(window=100),
        [(["e1", "e2", "e3", "e4"], [0.9, 0.8, 0.7, 0.1], [True, True, True, False], [True, False, True, True])],
    )
    log_path = tmp_path / "batches.jsonl"
    observer = StreamObserver(
        settings, PipelineMetrics("features"), run_log=RunLogWriter(log_path), alerts=publisher, quality_feed=feed
    )
    observer.set_model("fraud_xgb", 4, version_dir)
    assert observer.monitor is not None

    batches = [
        (Batch(0, 1000, 980, {"invalid": 20}, 980), merge_observations(observed(980, seed=10))),
        (Batch(1, 1000, 990, {"late": 10}, 990), merge_observations(observed(990, seed=11))),
        (Batch(2, 1200, 1200, {}, 1200), merge_observations(observed(1200, seed=12, scale=2.5))),
        (Batch(3, 1200, 1195, {"invalid": 5}, 1195), merge_observations(observed(1195, seed=13, scale=2.5))),
    ]
    entries = []
    for record, observations in batches:
        entries.append(observer.after_batch(record, observations))
        if record.batch_id < 2:
            assert publisher.published == [], "drift on unshifted traffic"

    raised = [(a.subject, a.test) for a in publisher.published]
    assert {subject for subject, _ in raised} == {"amount"} and len(raised) == len(set(raised))  # once per test
    assert {a.model_version for a in publisher.published} == {"4"}
    exposed = observer.metrics.exposition().decode()
    assert f'{m.RECORDS_READ}{{query="features"}} 4400.0' in exposed
    assert f'{m.RECORDS_DEAD_LETTERED}{{query="features",reason="invalid"}} 25.0' in exposed
    assert f'{m.SCORES_PUBLISHED}{{query="features"}} 4365.0' in exposed
    assert f'{m.END_TO_END_LATENCY}_count{{query="features"}} 4365.0' in exposed
    assert f'{m.DRIFT_ACTIVE}{{feature="amount",query="features"}} 1.0' in exposed
    assert f'{m.MODEL_VERSION}{{model_name="fraud_xgb",query="features"}} 4.0' in exposed
    assert f'{m.LIVE_PRECISION}{{query="features"}} 0.6666666666666666' in exposed

    logged = read_run_log(log_path)
    assert logged == entries and [e.batch_id for e in logged] == [0, 1, 2, 3]
    assert logged[0].model_name == "fraud_xgb" and logged[0].latency_seconds["p50"] is not None
    assert sum(logged[2].score_counts) == 1200
    assert logged[0].drift == {}  # 400 sampled values: below min_samples, not judged yet
    assert logged[3].drift["amount"]["drifting"] == 1.0 and logged[1].drift["amount"]["drifting"] == 0.0
    assert logged[3].quality["precision"] == pytest.approx(2 / 3)
    assert json.loads(log_path.read_text().splitlines()[-1])["batch_id"] == 3

    with caplog.at_level(logging.WARNING):
        observer.set_model("fraud_xgb", 5, tmp_path / "versions" / "5")  # no baseline there
    assert observer.monitor is None and "no drift checks" in caplog.text
    entry = observer.after_batch(Batch(4, 10, 10, {}, 10), merge_observations(observed(10, seed=14)))
    assert entry.drift == {} and sum(entry.score_counts) == 10
    released = weakref.ref(publisher)
    del publisher
    observer.close()
    assert feed.closed
    gc.collect()
    assert released() is None, "a closed observer still holds its alert publisher (and its Kafka producer)"


def test_a_failing_alert_publisher_does_not_stop_the_batch(tmp_path: Path) -> None:
    class Broken:
        def publish(self, alerts: list[Alert]) -> int:
            raise RuntimeError("broker gone")

    settings = Settings(observability={"drift_window": 500, "drift_min_samples": 100})
    training = frame(5000, seed=2)
    observer = StreamObserver(settings, PipelineMetrics(), alerts=Broken())
    observer.use_baseline(build_baseline(training, FEATURES, training["score"]))
    entry = observer.after_batch(Batch(0, 500, 500, {}, 500), merge_observations(observed(500, seed=3, scale=4.0)))
    assert entry.drift["amount"]["drifting"] == 1.0
