"""Drift alerts: records that fit schemas/alerts, a log line and a metric each, failures logged not raised."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.observability import metrics as m
from pipelines.observability.alerts import AlertPublisher, drift_alerts
from pipelines.observability.drift import DriftReport, DriftResult
from pipelines.observability.metrics import PipelineMetrics
from pipelines.serde.decoder import RecordDecoder

AMOUNT = DriftResult(
    "amount", 5000, True, psi=0.42, ks_statistic=0.25, ks_pvalue=1e-30, drifting=True, reasons=("psi", "ks")
)
SCORE = DriftResult("score", 5000, True, psi=0.3, ks_statistic=0.05, ks_pvalue=0.2, drifting=True, reasons=("psi",))
STILL = DriftResult("count", 5000, True, psi=0.01, ks_statistic=0.01, ks_pvalue=0.9)


def report() -> DriftReport:
    crossed = (("amount", "psi"), ("amount", "ks"), ("score", "psi"))
    return DriftReport(results=(AMOUNT, SCORE, STILL), crossed=crossed, recovered=())


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail
        self._callbacks: list[Any] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any) -> None:
        assert value is not None and key is not None
        self.sent.append((topic, key, value))
        self._callbacks.append(kwargs["on_delivery"])

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        for callback in self._callbacks:
            callback("broker unreachable" if self.fail else None, None)
        self._callbacks.clear()
        return 0


def test_each_test_that_fired_on_a_crossing_is_one_alert() -> None:
    alerts = drift_alerts(
        report(),
        query="features",
        now_ms=1_700_000_000_000,
        psi_threshold=0.2,
        ks_statistic_threshold=0.1,
        model_name="fraud_xgb",
        model_version=3,
    )
    assert [(a.subject, a.test) for a in alerts] == [("amount", "psi"), ("amount", "ks"), ("score", "psi")]
    psi_alert, ks_alert, _ = alerts
    assert (psi_alert.value, psi_alert.threshold, psi_alert.p_value) == (0.42, 0.2, None)
    assert (ks_alert.value, ks_alert.threshold, ks_alert.p_value) == (0.25, 0.1, 1e-30)
    assert psi_alert.model_version == "3" and psi_alert.kind == "drift"
    assert "amount drifted" in psi_alert.message and "5000" in psi_alert.message
    assert len({a.alert_id for a in alerts}) == 3
    quiet = DriftReport(results=(STILL,), crossed=(), recovered=())
    # amount's PSI was over already (alerted then); only its KS crossing is new
    later = DriftReport(results=(AMOUNT,), crossed=(("amount", "ks"),), recovered=())
    assert [
        (a.subject, a.test)
        for a in drift_alerts(later, query="q", now_ms=0, psi_threshold=0.2, ks_statistic_threshold=0.1)
    ] == [("amount", "ks")]
    assert drift_alerts(quiet, query="q", now_ms=0, psi_threshold=0.2, ks_statistic_threshold=0.1) == []


def test_publishing_logs_counts_and_sends_records_that_fit_the_alerts_schema(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings()
    metrics = PipelineMetrics("features")
    producer = FakeProducer()
    publisher = AlertPublisher(settings, metrics, producer=producer)
    alerts = drift_alerts(report(), query="features", now_ms=1, psi_threshold=0.2, ks_statistic_threshold=0.1)
    with caplog.at_level(logging.WARNING, logger="featurestream.alerts"):
        assert publisher.publish(alerts) == 3
    assert sum("ALERT drift amount" in line for line in caplog.messages) == 2

    assert {topic for topic, _, _ in producer.sent} == {settings.kafka.topics.alerts}
    decoder = RecordDecoder("alerts")
    records = [decoder.decode(value) for _, _, value in producer.sent]
    assert [r["subject"] for r in records] == ["amount", "amount", "score"]
    assert records[1]["test"] == "ks" and records[1]["p_value"] == 1e-30
    assert records[0]["model_name"] is None
    assert [key for _, key, _ in producer.sent] == [b"amount", b"amount", b"score"]

    exposed = metrics.exposition().decode()
    assert f'{m.ALERTS}{{kind="drift",query="features",subject="amount"}} 2.0' in exposed
    assert publisher.publish([]) == 0


def test_a_failed_delivery_is_logged_and_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    publisher = AlertPublisher(Settings(), producer=FakeProducer(fail=True))
    alerts = drift_alerts(report(), query="features", now_ms=1, psi_threshold=0.2, ks_statistic_threshold=0.1)
    with caplog.at_level(logging.ERROR, logger="featurestream.alerts"):
        assert publisher.publish(alerts) == 0
    assert publisher.failed == 3
    assert any("not delivered" in line for line in caplog.messages)
