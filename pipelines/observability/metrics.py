"""Prometheus metrics of a streaming job: one :class:`PipelineMetrics` per job, on its own registry.

Every number comes from something the job already has, never from a second pass over the data:

- the batch writer's counts, once per micro-batch (:meth:`PipelineMetrics.record_batch`, or
  :meth:`PipelineMetrics.observe_batch_record` with its ``BatchRecord``);
- Spark's query progress (rates, consumer lag per topic-partition, state store size, watermark) through
  :meth:`PipelineMetrics.observe_progress`, fed by :class:`pipelines.observability.listener.MetricsListener`;
- partial histograms computed where the scores are (executors), merged on the driver
  (:meth:`PipelineMetrics.observe_latency_counts`);
- drift, live quality and alerts from their own modules.

A private :class:`~prometheus_client.CollectorRegistry` (not prometheus_client's global one) lets tests, and
several jobs in one process, each have their own metrics. Metric names are module constants (the names as
exposed: counters end in ``_total``) so the Grafana dashboard and the status command are checked against them.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from pipelines.observability.histograms import LATENCY_BUCKETS, bucket_counts
from pipelines.observability.progress import ProgressSummary, summarise_progress

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from pipelines.observability.drift import DriftReport
    from pipelines.observability.quality import QualitySnapshot

log = logging.getLogger(__name__)

PREFIX = "featurestream_"

# Counters (exposed with the _total suffix, which is part of the constant).
RECORDS_READ = "featurestream_records_read_total"
RECORDS_VALID = "featurestream_records_valid_total"
RECORDS_DEAD_LETTERED = "featurestream_records_dead_lettered_total"
FEATURES_WRITTEN = "featurestream_features_written_total"
SCORES_PUBLISHED = "featurestream_scores_published_total"
BATCHES = "featurestream_batches_total"
BATCH_STAGE_SECONDS = "featurestream_batch_stage_seconds_total"
ALERTS = "featurestream_alerts_total"
# Histograms (exposed as <name>_bucket, <name>_sum, <name>_count).
BATCH_DURATION = "featurestream_batch_duration_seconds"
END_TO_END_LATENCY = "featurestream_end_to_end_latency_seconds"
# Gauges.
BATCH_ROWS = "featurestream_batch_rows"
LAST_BATCH_ID = "featurestream_last_batch_id"
INPUT_RATE = "featurestream_input_rows_per_second"
PROCESSING_RATE = "featurestream_processed_rows_per_second"
CONSUMER_LAG = "featurestream_consumer_lag_records"
WATERMARK = "featurestream_watermark_timestamp_seconds"
FEATURE_FRESHNESS = "featurestream_feature_freshness_seconds"
MODEL_VERSION = "featurestream_model_version"
STATE_ROWS = "featurestream_state_rows"
STATE_MEMORY = "featurestream_state_memory_bytes"
QUERY_ACTIVE = "featurestream_query_active"
DRIFT_PSI = "featurestream_drift_psi"
DRIFT_KS_STATISTIC = "featurestream_drift_ks_statistic"
DRIFT_KS_PVALUE = "featurestream_drift_ks_pvalue"
DRIFT_ACTIVE = "featurestream_drift_active"
LIVE_PRECISION = "featurestream_live_precision"
LIVE_RECALL = "featurestream_live_recall"
LIVE_ROC_AUC = "featurestream_live_roc_auc"
LIVE_LABELLED = "featurestream_live_labelled_scores"

COUNTERS: tuple[str, ...] = (
    RECORDS_READ,
    RECORDS_VALID,
    RECORDS_DEAD_LETTERED,
    FEATURES_WRITTEN,
    SCORES_PUBLISHED,
    BATCHES,
    BATCH_STAGE_SECONDS,
    ALERTS,
)
HISTOGRAMS: tuple[str, ...] = (BATCH_DURATION, END_TO_END_LATENCY)
GAUGES: tuple[str, ...] = (
    BATCH_ROWS,
    LAST_BATCH_ID,
    INPUT_RATE,
    PROCESSING_RATE,
    CONSUMER_LAG,
    WATERMARK,
    FEATURE_FRESHNESS,
    MODEL_VERSION,
    STATE_ROWS,
    STATE_MEMORY,
    QUERY_ACTIVE,
    DRIFT_PSI,
    DRIFT_KS_STATISTIC,
    DRIFT_KS_PVALUE,
    DRIFT_ACTIVE,
    LIVE_PRECISION,
    LIVE_RECALL,
    LIVE_ROC_AUC,
    LIVE_LABELLED,
)
METRIC_NAMES: tuple[str, ...] = COUNTERS + HISTOGRAMS + GAUGES

BATCH_DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


def series_names() -> frozenset[str]:
    """Every sample name the endpoint can expose: gauges and counters as is, histograms with their suffixes.

    (prometheus_client also adds ``<counter>_created`` and ``<histogram>_created`` samples; they carry no
    pipeline information and are left out on purpose.)
    """
    names = set(COUNTERS) | set(GAUGES)
    for histogram in HISTOGRAMS:
        names.update({f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"})
    return frozenset(names)


class BatchFacts(Protocol):
    """What the batch writer knows about one micro-batch (``pipelines.streaming.batch_writer.BatchRecord``)."""

    batch_id: int
    records_read: int
    valid: int
    dead_letters_by_reason: dict[str, int]
    online_written: dict[str, int]
    offline_rows: dict[str, int]
    scored: int
    seconds: float
    stage_seconds: dict[str, float]


class MergeableHistogram:
    """A Prometheus histogram that accepts bucket counts computed elsewhere (partitions), not only values.

    prometheus_client's ``Histogram`` only takes one value at a time; the end-to-end latencies live on the
    executors, so they arrive as per-partition bucket counts (:func:`~pipelines.observability.histograms.
    bucket_counts` with the same bounds) and are added here.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in bounds)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[list[int], float]] = {}

    def add_counts(self, labelvalues: Sequence[str], counts: Sequence[int], value_sum: float) -> None:
        """Add ``len(bounds) + 1`` non-cumulative counts (the last one above every bound) and their sum."""
        if len(counts) != len(self.bounds) + 1:
            raise ValueError(f"{self.name}: expected {len(self.bounds) + 1} bucket counts, got {len(counts)}")
        if any(n < 0 for n in counts):
            raise ValueError(f"{self.name}: bucket counts cannot be negative")
        key = tuple(str(v) for v in labelvalues)
        with self._lock:
            previous, total = self._series.get(key, ([0] * len(counts), 0.0))
            self._series[key] = ([a + int(b) for a, b in zip(previous, counts, strict=True)], total + value_sum)

    def observe_many(self, labelvalues: Sequence[str], values: Iterable[float]) -> None:
        listed = [float(v) for v in values]
        self.add_counts(labelvalues, bucket_counts(listed, self.bounds), sum(v for v in listed if v == v))

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = {key: (list(counts), total) for key, (counts, total) in self._series.items()}
        for key, (counts, total) in sorted(series.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*map(_le, self.bounds), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric(list(key), buckets, total)
        return [family]


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it (tests, or a job that shuts down cleanly)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def remove_series(metric: Gauge, *labels: str) -> None:
    """Drop one labelled series of ``metric`` from its registry.

    prometheus_client warns that removal "has not been implemented in multi-process mode" whenever
    PROMETHEUS_MULTIPROC_DIR is set, and importing Feast sets it. The warning is about a MultiProcessCollector
    reading the shared files; the endpoint here exposes the metric's own registry, from which the series is
    removed either way, so the warning is silenced for this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Removal of labels has not been implemented", category=UserWarning)
        metric.remove(*labels)


class PipelineMetrics:
    """All metrics of one streaming job, labelled by query name, on a registry of its own."""

    def __init__(self, query: str = "features", registry: CollectorRegistry | None = None) -> None:
        self.query = query
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        q = ("query",)
        self.records_read = Counter(RECORDS_READ, "Source records read by the streaming job.", q, registry=r)
        self.records_valid = Counter(RECORDS_VALID, "Records that decoded and passed validation.", q, registry=r)
        self.records_dead_lettered = Counter(
            RECORDS_DEAD_LETTERED, "Records sent to the dead-letter topic, by reason.", (*q, "reason"), registry=r
        )
        self.features_written = Counter(
            FEATURES_WRITTEN,
            "Feature rows written, by store (online: latest per entity; offline: every event) and view.",
            (*q, "store", "view"),
            registry=r,
        )
        self.scores_published = Counter(SCORES_PUBLISHED, "Scores published to the scores topic.", q, registry=r)
        self.batches = Counter(BATCHES, "Micro-batches completed by the batch writer.", q, registry=r)
        self.stage_seconds = Counter(
            BATCH_STAGE_SECONDS, "Wall seconds spent per batch-writer stage.", (*q, "stage"), registry=r
        )
        self.alerts = Counter(
            ALERTS, "Alerts raised (drift crossings), by kind and subject.", (*q, "kind", "subject"), registry=r
        )
        self.batch_duration = Histogram(
            BATCH_DURATION,
            "Wall seconds per micro-batch in the batch writer.",
            q,
            buckets=BATCH_DURATION_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = MergeableHistogram(
            END_TO_END_LATENCY, "Seconds from an event's event_time to its score being published.", q, LATENCY_BUCKETS
        )
        r.register(self.end_to_end_latency)
        self.batch_rows = Gauge(BATCH_ROWS, "Source records in the latest micro-batch.", q, registry=r)
        self.last_batch_id = Gauge(LAST_BATCH_ID, "Id of the latest completed micro-batch.", q, registry=r)
        self.input_rate = Gauge(INPUT_RATE, "Spark's input rate over the latest trigger.", q, registry=r)
        self.processing_rate = Gauge(PROCESSING_RATE, "Spark's processing rate over the latest trigger.", q, registry=r)
        self.consumer_lag = Gauge(
            CONSUMER_LAG,
            "Records not yet read per topic-partition (latest offset - batch end offset).",
            (*q, "topic", "partition"),
            registry=r,
        )
        self.watermark = Gauge(WATERMARK, "The query's event-time watermark (epoch seconds).", q, registry=r)
        self.feature_freshness = Gauge(
            FEATURE_FRESHNESS,
            "Age (now - event time) of the newest feature value written, per view; grows while nothing arrives.",
            (*q, "view"),
            registry=r,
        )
        self.model_version = Gauge(
            MODEL_VERSION, "Version of the model scoring the stream (registry version).", (*q, "model_name"), registry=r
        )
        self.state_rows = Gauge(STATE_ROWS, "Rows in a stateful operator's state store.", (*q, "operator"), registry=r)
        self.state_memory = Gauge(
            STATE_MEMORY, "Memory used by a stateful operator's state store.", (*q, "operator"), registry=r
        )
        self.query_active = Gauge(QUERY_ACTIVE, "1 while the query runs, 0 once it terminated.", q, registry=r)
        feature = (*q, "feature")
        self.drift_psi = Gauge(
            DRIFT_PSI, "PSI of the rolling window against the training baseline.", feature, registry=r
        )
        self.drift_ks_statistic = Gauge(
            DRIFT_KS_STATISTIC, "Two-sample KS statistic, rolling window vs baseline sample.", feature, registry=r
        )
        self.drift_ks_pvalue = Gauge(DRIFT_KS_PVALUE, "p-value of the two-sample KS test.", feature, registry=r)
        self.drift_active = Gauge(DRIFT_ACTIVE, "1 while the feature is over a drift threshold.", feature, registry=r)
        self.live_precision = Gauge(
            LIVE_PRECISION, "Precision of alerts over the latest labelled scores.", q, registry=r
        )
        self.live_recall = Gauge(LIVE_RECALL, "Recall of alerts over the latest labelled scores.", q, registry=r)
        self.live_roc_auc = Gauge(LIVE_ROC_AUC, "ROC-AUC over the latest labelled scores.", q, registry=r)
        self.live_labelled = Gauge(LIVE_LABELLED, "Labelled scores live quality is computed over.", q, registry=r)
        self._newest_event_s: dict[str, float] = {}
        self._known_models: set[str] = set()

    # -- the batch writer, once per micro-batch -------------------------------------------------------------

    def record_batch(
        self,
        batch_id: int,
        *,
        read: int,
        valid: int,
        dead_lettered_by_reason: Mapping[str, int],
        online_rows: Mapping[str, int],
        offline_rows: Mapping[str, int],
        scores_published: int,
        duration_s: float,
        stage_seconds: Mapping[str, float] | None = None,
    ) -> None:
        """Count one completed micro-batch. Call it after the batch's writes succeeded, once per batch id.

        A batch Spark replays after a crash is counted again (the counters say what the job did, the topics
        hold each record once); the run log tells the two apart by batch id.
        """
        q = self.query
        self.records_read.labels(q).inc(read)
        self.records_valid.labels(q).inc(valid)
        for reason, count in dead_lettered_by_reason.items():
            self.records_dead_lettered.labels(q, reason).inc(count)
        for view, rows in online_rows.items():
            self.features_written.labels(q, "online", view).inc(rows)
        for view, rows in offline_rows.items():
            self.features_written.labels(q, "offline", view).inc(rows)
        self.scores_published.labels(q).inc(scores_published)
        self.batches.labels(q).inc()
        for stage, seconds in (stage_seconds or {}).items():
            self.stage_seconds.labels(q, stage).inc(max(0.0, seconds))
        self.batch_duration.labels(q).observe(duration_s)
        self.batch_rows.labels(q).set(read)
        self.last_batch_id.labels(q).set(batch_id)

    def observe_batch_record(self, record: BatchFacts) -> None:
        """:meth:`record_batch` from the batch writer's ``BatchRecord`` as it stands at the end of a batch."""
        self.record_batch(
            record.batch_id,
            read=record.records_read,
            valid=record.valid,
            dead_lettered_by_reason=record.dead_letters_by_reason,
            online_rows=record.online_written,
            offline_rows=record.offline_rows,
            scores_published=record.scored,
            duration_s=record.seconds,
            stage_seconds=record.stage_seconds,
        )

    def observe_end_to_end_latency(self, seconds: Iterable[float]) -> None:
        """Observe latencies (event_time -> score published) held on the driver."""
        self.end_to_end_latency.observe_many((self.query,), seconds)

    def observe_latency_counts(self, counts: Sequence[int], seconds_sum: float) -> None:
        """Add latency bucket counts computed on executors over :data:`~pipelines.observability.histograms.
        LATENCY_BUCKETS` (``len + 1`` counts, merged across partitions) and the sum of those latencies."""
        self.end_to_end_latency.add_counts((self.query,), counts, seconds_sum)

    def set_model_version(self, model_name: str, version: int | None) -> None:
        """The model now scoring; None (no production model) clears it, so dashboards show no model."""
        if version is None:
            for name in self._known_models:
                remove_series(self.model_version, self.query, name)
            self._known_models.clear()
            return
        for name in self._known_models - {model_name}:
            remove_series(self.model_version, self.query, name)
        self._known_models = {model_name}
        self.model_version.labels(self.query, model_name).set(version)

    def set_feature_freshness(self, view: str, newest_event_time_s: float) -> None:
        """Remember the newest event time written to ``view``; the gauge reports its age at every scrape."""
        previous = self._newest_event_s.get(view)
        if previous is not None and previous >= newest_event_time_s:
            return
        self._newest_event_s[view] = newest_event_time_s
        if previous is None:
            newest = self._newest_event_s
            self.feature_freshness.labels(self.query, view).set_function(lambda: time.time() - newest[view])

    # -- Spark's progress -----------------------------------------------------------------------------------

    def observe_progress(self, progress: Mapping[str, Any] | str) -> ProgressSummary:
        """Rates, lag per topic-partition, state size and watermark from one ``StreamingQueryProgress``."""
        summary = summarise_progress(progress)
        q = summary.query_name or self.query
        if summary.input_rows_per_second is not None:
            self.input_rate.labels(q).set(summary.input_rows_per_second)
        if summary.processed_rows_per_second is not None:
            self.processing_rate.labels(q).set(summary.processed_rows_per_second)
        for lag in summary.lags:
            self.consumer_lag.labels(q, lag.topic, str(lag.partition)).set(lag.lag)
        for operator in summary.state:
            self.state_rows.labels(q, operator.operator).set(operator.rows_total)
            self.state_memory.labels(q, operator.operator).set(operator.memory_bytes)
        if summary.watermark_s:
            self.watermark.labels(q).set(summary.watermark_s)
        self.query_active.labels(q).set(1)
        return summary

    def set_query_active(self, query: str, active: bool) -> None:
        self.query_active.labels(query).set(1 if active else 0)

    # -- drift, quality, alerts -----------------------------------------------------------------------------

    def observe_drift(self, report: DriftReport) -> None:
        """Gauges of every judged feature (and the score) in a drift report; unjudged ones are left as they were."""
        for result in report.results:
            if not result.judged:
                continue
            labels = (self.query, result.feature)
            if result.psi is not None:
                self.drift_psi.labels(*labels).set(result.psi)
            if result.ks_statistic is not None:
                self.drift_ks_statistic.labels(*labels).set(result.ks_statistic)
            if result.ks_pvalue is not None:
                self.drift_ks_pvalue.labels(*labels).set(result.ks_pvalue)
            self.drift_active.labels(*labels).set(1 if result.drifting else 0)

    def set_live_quality(self, snapshot: QualitySnapshot) -> None:
        """Live precision, recall and ROC-AUC; a value that cannot be computed yet (no alert, one class) is NaN."""
        q = self.query
        self.live_labelled.labels(q).set(snapshot.labelled)
        self.live_precision.labels(q).set(_or_nan(snapshot.precision))
        self.live_recall.labels(q).set(_or_nan(snapshot.recall))
        self.live_roc_auc.labels(q).set(_or_nan(snapshot.roc_auc))

    def count_alert(self, kind: str, subject: str) -> None:
        self.alerts.labels(self.query, kind, subject).inc()

    # -- exposition -----------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text a scrape of ``/metrics`` returns now (for tests and for writing a snapshot to a file)."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Start prometheus_client's HTTP server on this registry (a daemon thread); port 0 picks a free one."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        actual = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", host, actual)
        return MetricsServer(host, actual, server, thread)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def iter_metric_names(text: str) -> Iterator[str]:
    """Sample names in an exposition text (for checks that only the documented names are exposed)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name
