"""Prometheus metrics: a known run's counts come out of the real HTTP endpoint unchanged; progress and listener."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.observability import metrics as m
from pipelines.observability.drift import DriftReport, DriftResult
from pipelines.observability.histograms import LATENCY_BUCKETS, bucket_counts, histogram_quantile, merge_counts
from pipelines.observability.listener import MetricsListener
from pipelines.observability.metrics import MetricsServer, PipelineMetrics, iter_metric_names, series_names
from pipelines.observability.progress import summarise_progress
from pipelines.observability.quality import quality_of
from pipelines.observability.status import scrape
from pipelines.stack.processes import free_port


@dataclass
class Batch:
    """The shape of the batch writer's BatchRecord (only what metrics read)."""

    batch_id: int
    records_read: int
    valid: int
    dead_letters_by_reason: dict[str, int]
    online_written: dict[str, int]
    offline_rows: dict[str, int]
    scored: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    dead_lettered: int = 0


# A known run of three batches: 12,000 records read, 11,640 valid, 360 dead-lettered, 11,640 scored.
RUN = [
    Batch(
        0,
        5000,
        4850,
        {"invalid": 100, "undecodable:garbage": 50},
        {"card_features": 1200, "merchant_features": 400},
        {"card_features": 4850, "merchant_features": 4850},
        4850,
        3.5,
        {"compute": 2.5, "scoring": 0.7},
    ),
    Batch(
        1,
        4000,
        3890,
        {"invalid": 60, "late": 50},
        {"card_features": 1100, "merchant_features": 380},
        {"card_features": 3890, "merchant_features": 3890},
        3890,
        2.0,
        {"compute": 1.5, "scoring": 0.3},
    ),
    Batch(
        2,
        3000,
        2900,
        {"undecodable:garbage": 40, "late": 60},
        {"card_features": 900, "merchant_features": 300},
        {"card_features": 2900, "merchant_features": 2900},
        2900,
        1.0,
        {"compute": 0.6, "scoring": 0.2},
    ),
]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped[(name, frozenset({"query": "features", **labels}.items()))]


@pytest.fixture
def served() -> Iterator[tuple[PipelineMetrics, MetricsServer]]:
    metrics = PipelineMetrics("features")
    server = metrics.serve(free_port(), "127.0.0.1")
    try:
        yield metrics, server
    finally:
        server.close()


def test_a_known_run_is_exposed_with_exactly_its_counts(served: tuple[PipelineMetrics, MetricsServer]) -> None:
    metrics, server = served
    for batch in RUN:
        metrics.observe_batch_record(batch)
    scraped = samples(scrape(server.url))

    assert value(scraped, m.RECORDS_READ) == 12_000
    assert value(scraped, m.RECORDS_VALID) == 11_640
    assert value(scraped, m.RECORDS_DEAD_LETTERED, reason="invalid") == 160
    assert value(scraped, m.RECORDS_DEAD_LETTERED, reason="undecodable:garbage") == 90
    assert value(scraped, m.RECORDS_DEAD_LETTERED, reason="late") == 110
    dead = sum(v for (name, _), v in scraped.items() if name == m.RECORDS_DEAD_LETTERED)
    assert value(scraped, m.RECORDS_READ) == value(scraped, m.RECORDS_VALID) + dead
    assert value(scraped, m.SCORES_PUBLISHED) == 11_640
    assert value(scraped, m.FEATURES_WRITTEN, store="online", view="card_features") == 3200
    assert value(scraped, m.FEATURES_WRITTEN, store="offline", view="merchant_features") == 11_640
    assert value(scraped, m.BATCHES) == 3
    assert value(scraped, m.LAST_BATCH_ID) == 2
    assert value(scraped, m.BATCH_ROWS) == 3000
    assert value(scraped, f"{m.BATCH_DURATION}_count") == 3
    assert value(scraped, f"{m.BATCH_DURATION}_sum") == pytest.approx(6.5)
    assert value(scraped, m.BATCH_STAGE_SECONDS, stage="compute") == pytest.approx(4.6)


def test_record_batch_takes_plain_numbers_too() -> None:
    metrics = PipelineMetrics("q")
    metrics.record_batch(
        9,
        read=10,
        valid=7,
        dead_lettered_by_reason={"invalid": 3},
        online_rows={"v": 4},
        offline_rows={"v": 7},
        scores_published=7,
        duration_s=0.25,
    )
    scraped = samples(metrics.exposition().decode())
    assert scraped[(m.RECORDS_READ, frozenset({("query", "q")}))] == 10
    assert scraped[(m.RECORDS_DEAD_LETTERED, frozenset({("query", "q"), ("reason", "invalid")}))] == 3


def test_latency_histogram_merges_partition_counts_like_one_histogram() -> None:
    latencies = [0.05, 0.3, 0.7, 1.5, 3.0, 3.0, 45.0, 4000.0, 10**7]
    left, right = latencies[:4], latencies[4:]
    merged = merge_counts([bucket_counts(left, LATENCY_BUCKETS), bucket_counts(right, LATENCY_BUCKETS)])
    assert merged == bucket_counts(latencies, LATENCY_BUCKETS)
    assert sum(merged) == len(latencies) and merged[-1] == 1  # 10**7 s is above every bound

    from_counts, from_values = PipelineMetrics(), PipelineMetrics()
    from_counts.observe_latency_counts(merged, sum(latencies))
    from_values.observe_end_to_end_latency(latencies)
    assert from_counts.exposition() == from_values.exposition()
    scraped = samples(from_values.exposition().decode())
    assert value(scraped, f"{m.END_TO_END_LATENCY}_count") == len(latencies)
    assert value(scraped, f"{m.END_TO_END_LATENCY}_sum") == pytest.approx(sum(latencies))
    assert value(scraped, f"{m.END_TO_END_LATENCY}_bucket", le="5.0") == 6  # cumulative, le inclusive
    assert value(scraped, f"{m.END_TO_END_LATENCY}_bucket", le="+Inf") == len(latencies)
    with pytest.raises(ValueError, match="bucket counts"):
        from_counts.observe_latency_counts([1, 2], 1.0)


def test_histogram_quantile_interpolates_like_promql() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert histogram_quantile(0.5, bounds, [0, 10, 0, 0]) == pytest.approx(1.5)
    assert histogram_quantile(0.25, bounds, [10, 10, 0, 0]) == pytest.approx(0.5)
    assert histogram_quantile(0.99, bounds, [0, 0, 0, 5]) == 4.0  # the open top bucket: highest bound
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None


PROGRESS: dict[str, Any] = {
    "id": "8c5a1e0e-0000-4000-8000-000000000001",
    "runId": "8c5a1e0e-0000-4000-8000-000000000002",
    "name": "features",
    "timestamp": "2026-01-01T12:00:00.000Z",
    "batchId": 4,
    "batchDuration": 2500,
    "numInputRows": 6000,
    "inputRowsPerSecond": 3000.0,
    "processedRowsPerSecond": 2400.0,
    "durationMs": {"addBatch": 2300, "triggerExecution": 2500},
    "eventTime": {"watermark": "2026-01-01T11:50:00.000Z"},
    "stateOperators": [
        {"operatorName": "transformWithStateInPandasExec", "numRowsTotal": 128, "memoryUsedBytes": 4_000_000}
    ],
    "sources": [
        {
            "description": "KafkaV2[Subscribe[transactions]]",
            "startOffset": {"transactions": {"0": 0, "1": 0, "2": 0}},
            "endOffset": {"transactions": {"0": 2000, "1": 2100, "2": 1900}},
            "latestOffset": {"transactions": {"0": 2500, "1": 2100, "2": 5000}},
            "numInputRows": 6000,
            "inputRowsPerSecond": 3000.0,
            "processedRowsPerSecond": 2400.0,
            "metrics": {"avgOffsetsBehindLatest": "1200.0", "maxOffsetsBehindLatest": "3100"},
        }
    ],
    "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
}


def test_progress_gives_rates_lag_per_partition_state_and_watermark() -> None:
    summary = summarise_progress(json.dumps(PROGRESS))
    assert summary.query_name == "features"
    assert summary.input_rows_per_second == 3000.0
    assert [(lag.topic, lag.partition, lag.lag) for lag in summary.lags] == [
        ("transactions", 0, 500),
        ("transactions", 1, 0),
        ("transactions", 2, 3100),
    ]
    assert summary.state[0].rows_total == 128
    assert summary.watermark_s == 1767268200.0
    # pyspark's SourceProgress keeps offsets as JSON strings: the same numbers come out.
    as_strings = {**PROGRESS, "sources": [{**PROGRESS["sources"][0], "endOffset": '{"transactions":{"0":2400}}'}]}
    assert [lag.lag for lag in summarise_progress(as_strings).lags] == [100]


def test_listener_forwards_progress_start_and_termination_to_the_metrics() -> None:
    metrics = PipelineMetrics("features")
    seen = []
    listener = MetricsListener(metrics, on_progress=seen.append)
    listener.onQueryStarted(SimpleNamespace(id="q-1", name="features"))
    listener.onQueryProgress(SimpleNamespace(progress=SimpleNamespace(json=json.dumps(PROGRESS))))
    scraped = samples(metrics.exposition().decode())
    assert value(scraped, m.QUERY_ACTIVE) == 1
    assert value(scraped, m.INPUT_RATE) == 3000.0
    assert value(scraped, m.PROCESSING_RATE) == 2400.0
    assert value(scraped, m.CONSUMER_LAG, topic="transactions", partition="2") == 3100
    assert value(scraped, m.STATE_ROWS, operator="transformWithStateInPandasExec") == 128
    assert value(scraped, m.STATE_MEMORY, operator="transformWithStateInPandasExec") == 4_000_000
    assert seen and seen[0].batch_id == 4

    listener.onQueryProgress(SimpleNamespace(progress=SimpleNamespace(json="not json")))  # logged, not raised
    listener.onQueryTerminated(SimpleNamespace(id="q-1", exception=None))
    assert value(samples(metrics.exposition().decode()), m.QUERY_ACTIVE) == 0


def test_model_version_freshness_drift_quality_and_alerts() -> None:
    metrics = PipelineMetrics("features")
    metrics.set_model_version("fraud_xgb", 3)
    metrics.set_model_version("fraud_xgb_v2", 1)
    metrics.set_feature_freshness("card_features", 1_000.0)
    metrics.set_feature_freshness("card_features", 500.0)  # older: ignored, freshness never goes back
    report = DriftReport(
        results=(
            DriftResult("amount", 2000, True, psi=0.31, ks_statistic=0.2, ks_pvalue=1e-9, drifting=True),
            DriftResult("count", 10, False),
        ),
        crossed=(),
        recovered=(),
    )
    metrics.observe_drift(report)
    metrics.set_live_quality(quality_of([True, False, True, False], [0.9, 0.8, 0.2, 0.1], [True, True, False, False]))
    metrics.count_alert("drift", "amount")
    scraped = samples(metrics.exposition().decode())
    versions = {dict(labels)["model_name"]: v for (name, labels), v in scraped.items() if name == m.MODEL_VERSION}
    assert versions == {"fraud_xgb_v2": 1}
    age = value(scraped, m.FEATURE_FRESHNESS, view="card_features")
    assert age > 1.7e9  # now - 1000 s since the epoch: computed at scrape time
    assert value(scraped, m.DRIFT_PSI, feature="amount") == pytest.approx(0.31)
    assert value(scraped, m.DRIFT_ACTIVE, feature="amount") == 1
    assert (m.DRIFT_PSI, frozenset({("query", "features"), ("feature", "count")})) not in scraped
    assert value(scraped, m.LIVE_PRECISION) == 0.5
    assert value(scraped, m.LIVE_RECALL) == 0.5
    assert value(scraped, m.LIVE_ROC_AUC) == 0.75
    assert value(scraped, m.ALERTS, kind="drift", subject="amount") == 1

    metrics.set_live_quality(quality_of([False], [0.1], [False]))  # nothing alerted: precision undefined
    assert math.isnan(value(samples(metrics.exposition().decode()), m.LIVE_PRECISION))
    metrics.set_model_version("fraud_xgb_v2", None)
    assert not [n for (n, _), _v in samples(metrics.exposition().decode()).items() if n == m.MODEL_VERSION]


def test_every_exposed_name_is_a_documented_constant() -> None:
    metrics = PipelineMetrics("features")
    for batch in RUN:
        metrics.observe_batch_record(batch)
    metrics.observe_progress(PROGRESS)
    metrics.observe_end_to_end_latency([1.0, 2.0])
    metrics.set_model_version("fraud_xgb", 1)
    metrics.set_feature_freshness("card_features", 0.0)
    metrics.count_alert("drift", "x")
    metrics.set_live_quality(quality_of([True], [0.9], [True]))
    exposed = {name for name in iter_metric_names(metrics.exposition().decode()) if not name.endswith("_created")}
    assert exposed <= series_names()
    assert all(name.startswith(m.PREFIX) for name in m.METRIC_NAMES)
    assert len(set(m.METRIC_NAMES)) == len(m.METRIC_NAMES)


def test_two_pipelines_in_one_process_do_not_collide() -> None:
    first, second = PipelineMetrics("a"), PipelineMetrics("b")
    first.record_batch(
        0,
        read=1,
        valid=1,
        dead_lettered_by_reason={},
        online_rows={},
        offline_rows={},
        scores_published=0,
        duration_s=0.1,
    )
    assert b'query="a"' in first.exposition()
    assert b'query="a"' not in second.exposition()


def test_feast_imported_before_the_metrics_does_not_make_pipelines_share_counts() -> None:
    """Importing Feast sets PROMETHEUS_MULTIPROC_DIR; if prometheus_client came after it, every registry would
    share one value per name and labels, and a second job (or test) would expose the first one's counts too.

    Run in a fresh interpreter: in this one, whichever module imported prometheus_client first already decided;
    and without the variable, which an earlier test's Feast import may have left in this process's environment.
    """
    import os
    import subprocess
    import sys

    multiprocess = {"PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR", "prometheus_multiproc_dir"}
    env = {name: value for name, value in os.environ.items() if name not in multiprocess}

    script = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import pipelines  # as any of our modules does, before Feast\n"
        "import feast\n"
        "from pipelines.observability.metrics import RECORDS_READ, PipelineMetrics\n"
        "first, second = PipelineMetrics('features'), PipelineMetrics('features')\n"
        "first.records_read.labels('features').inc(5)\n"
        "second.records_read.labels('features').inc(1)\n"
        "print(second.registry.get_sample_value(RECORDS_READ, {'query': 'features'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"
