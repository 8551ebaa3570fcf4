"""Alerts: a record on the ``alerts`` topic (Avro, ``schemas/alerts``), a log line and a metric per alert.

:func:`drift_alerts` turns the thresholds a drift report says were *crossed* into :class:`Alert` values (pure); an
:class:`AlertPublisher` logs, counts and publishes them. Alerts go through a plain idempotent producer, not a
transaction: a replayed batch may raise the same alert again, which is harmless, and each alert carries a
unique ``alert_id`` for consumers that care. A failed delivery is logged, never raised: an alert must not stop
the stream it is about.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from pipelines.config import Settings
from pipelines.kafka.client_config import producer_config
from pipelines.observability.drift import DriftReport

if TYPE_CHECKING:
    from pipelines.observability.metrics import PipelineMetrics
    from pipelines.serde.encoder import Encoder

log = logging.getLogger("featurestream.alerts")

ALERTS_SUBJECT = "alerts"
DRIFT = "drift"


@dataclass(frozen=True)
class Alert:
    """One alert, field for field the ``alerts`` Avro record (``raised_at`` in epoch milliseconds)."""

    alert_id: str
    kind: str
    subject: str
    test: str
    value: float
    threshold: float
    p_value: float | None
    samples: int
    query: str
    model_name: str | None
    model_version: str | None
    raised_at: int
    message: str

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def drift_alerts(
    report: DriftReport,
    *,
    query: str,
    now_ms: int,
    psi_threshold: float,
    ks_statistic_threshold: float,
    model_name: str | None = None,
    model_version: int | str | None = None,
) -> list[Alert]:
    """One alert per (feature, test) that *crossed* its threshold in this report."""
    alerts = []
    for result in report.crossings:
        for test in result.reasons:
            if (result.feature, test) not in report.crossed:
                continue  # this test was over its threshold already: alerted then
            if test == "psi":
                value, threshold, p_value = result.psi, psi_threshold, None
                detail = f"PSI {result.psi:.3f} >= {psi_threshold}"
            else:
                value, threshold, p_value = result.ks_statistic, ks_statistic_threshold, result.ks_pvalue
                detail = (
                    f"KS statistic {result.ks_statistic:.3f} >= {ks_statistic_threshold} (p={result.ks_pvalue:.2g})"
                )
            alerts.append(
                Alert(
                    alert_id=str(uuid.uuid4()),
                    kind=DRIFT,
                    subject=result.feature,
                    test=test,
                    value=float(value or 0.0),
                    threshold=float(threshold),
                    p_value=p_value,
                    samples=result.samples,
                    query=query,
                    model_name=model_name,
                    model_version=None if model_version is None else str(model_version),
                    raised_at=now_ms,
                    message=f"{result.feature} drifted from the training baseline: {detail} "
                    f"over the latest {result.samples} values",
                )
            )
    return alerts


class _Producer(Protocol):
    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...


class AlertPublisher:
    """Logs, counts and publishes alerts to ``kafka.topics.alerts``."""

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics | None = None,
        *,
        producer: _Producer | None = None,
        encoder: Encoder | None = None,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self.topic = settings.kafka.topics.alerts
        self.metrics = metrics
        self.flush_timeout_s = flush_timeout_s
        if producer is None:
            from confluent_kafka import Producer

            producer = cast(_Producer, Producer(producer_config(settings)))
        if encoder is None:
            from pipelines.serde.encoder import make_encoder

            encoder = make_encoder(ALERTS_SUBJECT, settings, self.topic)
        self._producer: _Producer = producer
        self._encoder = encoder
        self.failed = 0

    def publish(self, alerts: Sequence[Alert] | Iterable[Alert]) -> int:
        """Log, count and send each alert; waits for delivery. Returns how many the broker acknowledged."""
        sent = list(alerts)
        if not sent:
            return 0
        delivered = 0

        def on_delivery(error: Any, _message: Any) -> None:
            nonlocal delivered
            if error is None:
                delivered += 1
            else:
                self.failed += 1
                log.error("alert not delivered to %s: %s", self.topic, error)

        for alert in sent:
            log.warning("ALERT %s %s: %s", alert.kind, alert.subject, alert.message)
            if self.metrics is not None:
                self.metrics.count_alert(alert.kind, alert.subject)
            self._producer.produce(
                self.topic,
                value=self._encoder.encode(alert.to_record()),
                key=alert.subject.encode(),
                on_delivery=on_delivery,
            )
            self._producer.poll(0)
        remaining = self._producer.flush(self.flush_timeout_s)
        if remaining:
            log.error("%d alert(s) still undelivered to %s after %.0fs", remaining, self.topic, self.flush_timeout_s)
        return delivered
