"""The streaming job's one handle on observability: what the batch writer calls once per micro-batch.

:class:`StreamObserver` holds the metrics (and their HTTP endpoint), the drift monitor of the scoring model,
the alert publisher, the live-quality feed and the run-log writer, and runs them in order after each batch
(:meth:`StreamObserver.after_batch`). The parts are injected, so the job builds real ones
(:meth:`StreamObserver.from_settings`) and tests give fakes. Nothing here may stop the stream: a failing
alert or quality poll is logged and the batch goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.observability.batch_observations import BatchObservations
from pipelines.observability.drift import BASELINE_FILE, DriftBaseline, DriftMonitor, DriftReport, load_baseline
from pipelines.observability.errors import BaselineError
from pipelines.observability.metrics import BatchFacts, MetricsServer, PipelineMetrics
from pipelines.observability.progress import ProgressSummary
from pipelines.observability.quality import LiveQuality, QualitySnapshot
from pipelines.observability.run_log import RunLogEntry, RunLogWriter, entry_from_batch

if TYPE_CHECKING:
    from pipelines.config import Settings
    from pipelines.observability.alerts import Alert
    from pipelines.observability.listener import MetricsListener

log = logging.getLogger(__name__)


class _Publisher(Protocol):
    def publish(self, alerts: list[Alert]) -> int: ...


class _Feed(Protocol):
    def snapshot(self) -> QualitySnapshot: ...

    def close(self) -> None: ...


class StreamObserver:
    """Metrics, drift, alerts, live quality and the run log of one streaming query."""

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        *,
        run_log: RunLogWriter | None = None,
        alerts: _Publisher | None = None,
        quality_feed: _Feed | None = None,
        server: MetricsServer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.run_log = run_log
        self.alerts = alerts
        self.quality_feed = quality_feed
        self.server = server
        self.monitor: DriftMonitor | None = None
        self.model: tuple[str, int] | None = None
        self.last_progress: ProgressSummary | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, run_log: Path | None = None, serve: bool | None = None, follow_quality: bool = True
    ) -> StreamObserver:
        """Real parts: the endpoint on ``observability.metrics_port`` (unless ``serve`` is False or metrics are
        disabled), an alert publisher, and a quality feed on the scores and labels topics."""
        from pipelines.observability.alerts import AlertPublisher

        observe = settings.observability
        metrics = PipelineMetrics(settings.stream.query_name)
        should_serve = observe.metrics_enabled if serve is None else serve
        server = metrics.serve(observe.metrics_port, observe.metrics_host) if should_serve else None
        feed = None
        if follow_quality:
            from pipelines.observability.quality_feed import QualityFeed

            feed = QualityFeed(settings, LiveQuality.from_settings(settings))
        observer = cls(
            settings,
            metrics,
            run_log=RunLogWriter(run_log) if run_log is not None else None,
            alerts=AlertPublisher(settings, metrics),
            quality_feed=feed,
            server=server,
        )
        if feed is not None:  # off the batch's path: the next micro-batch does not wait for the scores' read-back
            feed.follow(observe.quality_read_per_s)
        return observer

    def listener(self) -> MetricsListener:
        """The ``StreamingQueryListener`` to register: ``spark.streams.addListener(observer.listener())``."""
        from pipelines.observability.listener import MetricsListener

        return MetricsListener(self.metrics, on_progress=self._remember_progress)

    def _remember_progress(self, summary: ProgressSummary) -> None:
        self.last_progress = summary

    def set_model(self, name: str | None, version: int | None, version_dir: Path | None = None) -> None:
        """The model scoring from now on. Its drift baseline (``drift_baseline.json`` in ``version_dir``) replaces
        the monitor; a version without one is scored without drift checks (logged once per switch)."""
        if name is None or version is None:
            self.model, self.monitor = None, None
            self.metrics.set_model_version(name or "", None)
            return
        if self.model == (name, version):
            return
        self.model = (name, version)
        self.metrics.set_model_version(name, version)
        self.monitor = None
        if version_dir is not None:
            try:
                self.use_baseline(load_baseline(version_dir / BASELINE_FILE))
            except BaselineError as exc:
                log.warning("model %s v%s: no drift checks (%s)", name, version, exc)

    def use_baseline(self, baseline: DriftBaseline) -> None:
        self.monitor = DriftMonitor.from_settings(baseline, self.settings.observability)

    def after_batch(self, record: BatchFacts, observations: BatchObservations | None = None) -> RunLogEntry:
        """Everything after a batch's writes succeeded: counts, latency, drift (and alerts), live quality, and
        the run-log line (returned, and appended if the observer has a run log)."""
        self.metrics.observe_batch_record(record)
        additions: dict[str, Any] = {}
        if self.model is not None:
            additions["model_name"] = self.model[0]
        if observations is not None and observations.rows:
            self.metrics.observe_latency_counts(observations.latency_counts, observations.latency_sum_s)
            additions["latency_counts"] = observations.latency_counts
            additions["score_counts"] = observations.score_counts
            report = self._drift(observations)
            if report is not None:
                additions["drift"] = report.as_dict()
        if self.quality_feed is not None:
            try:
                snapshot = self.quality_feed.snapshot()
            except Exception:  # the quality feed must not stop the stream
                log.exception("live quality: polling scores and labels failed")
            else:
                self.metrics.set_live_quality(snapshot)
                additions["quality"] = snapshot.as_dict()
        if self.last_progress is not None:
            additions["input_rows_per_second"] = self.last_progress.input_rows_per_second
            additions["processed_rows_per_second"] = self.last_progress.processed_rows_per_second
        entry = entry_from_batch(record, **additions)
        if self.run_log is not None:
            self.run_log.append(entry)
        return entry

    def _drift(self, observations: BatchObservations) -> DriftReport | None:
        if self.monitor is None:
            return None
        self.monitor.update(observations.features, observations.scores)
        report = self.monitor.evaluate()
        self.metrics.observe_drift(report)
        if report.crossed and self.alerts is not None:
            from pipelines.observability.alerts import drift_alerts

            observe = self.settings.observability
            raised = drift_alerts(
                report,
                query=self.metrics.query,
                now_ms=int(time.time() * 1000),
                psi_threshold=observe.psi_threshold,
                ks_statistic_threshold=observe.ks_statistic_threshold,
                model_name=self.model[0] if self.model else None,
                model_version=self.model[1] if self.model else None,
            )
            try:
                self.alerts.publish(raised)
            except Exception:
                log.exception("alerts: publishing %d alert(s) failed", len(raised))
        for feature in report.recovered:
            log.info("drift: %s is back within the thresholds", feature)
        return report

    def close(self) -> None:
        """Stop the endpoint and the quality feed, and let go of the alert publisher.

        Letting go matters: Spark's listener bus keeps this observer (through its listener) for the life of the
        session, so a publisher still referenced here would keep its Kafka producer, and its connections and
        reconnect attempts, after the query has ended. Every alert was already flushed when it was published.
        """
        if self.quality_feed is not None:
            self.quality_feed.close()
            self.quality_feed = None
        if self.server is not None:
            self.server.close()
            self.server = None
        self.alerts = None
