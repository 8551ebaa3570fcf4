"""What a produce run reports: counts a test can compare with what it reads back, exactly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipelines.kafka.producer import DeliveryReport

BAD_KIND_HEADER = "featurestream-bad-kind"
"""Header on every injected bad record naming its kind, so tests can follow each one to the dead-letter topic."""


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    sent: int
    """Records delivered (acknowledged by the broker)."""
    failed: int
    """Records the broker did not acknowledge, or the producer rejected; never silently dropped."""
    bytes: int
    """Value bytes handed to the producer."""

    @property
    def attempted(self) -> int:
        return self.sent + self.failed


@dataclass(frozen=True)
class ProduceSummary:
    main: TopicSummary
    """The topic produced to (transactions, or the file's topic)."""
    labels: TopicSummary | None = None
    bad_by_kind: Mapping[str, int] = field(default_factory=dict)
    """Injected bad records handed to the producer, by kind (all delivered when ``failed`` is 0)."""
    fraud_by_pattern: Mapping[str, int] = field(default_factory=dict)
    rejected: int = 0
    """File records not produced because they did not match the topic's schema."""
    rejection_examples: tuple[str, ...] = ()
    failure_reasons: Mapping[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return self.main.sent

    @property
    def failed(self) -> int:
        return self.main.failed + (self.labels.failed if self.labels else 0)

    @property
    def bad(self) -> int:
        return sum(self.bad_by_kind.values())

    @property
    def events_per_s(self) -> float:
        return self.main.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def bytes_per_event(self) -> float:
        return self.main.bytes / self.main.attempted if self.main.attempted else 0.0

    @property
    def ok(self) -> bool:
        """Everything delivered and nothing rejected."""
        return self.failed == 0 and self.rejected == 0


@dataclass(frozen=True)
class ProgressUpdate:
    """Sent so far (records handed to the producer) of ``total`` (None when unknown, e.g. a file)."""

    produced: int
    total: int | None
    labels: int
    elapsed_s: float


ProgressCallback = Callable[[ProgressUpdate], None]


def topic_summary(report: DeliveryReport, topic: str) -> TopicSummary:
    counts = report.counts(topic)
    return TopicSummary(topic=topic, sent=counts.delivered, failed=counts.failed, bytes=counts.bytes)
