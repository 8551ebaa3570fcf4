"""A confluent-kafka producer that accounts for every record: delivered, failed (with the reason), or pending.

Throughput: only failures are reported back (``delivery.report.only.error``), so a healthy run costs no
Python callback per record; after ``flush`` every record is either known failed, still queued (counted as
failed: not delivered before the timeout), or delivered. A full local queue (``BufferError``) is waited out
by serving delivery reports, never by dropping the record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.client_config import admin_config, producer_config


class BrokerUnreachableError(FeaturestreamError):
    """No broker answered within the timeout."""


class TopicMissingError(FeaturestreamError):
    """A topic to produce to does not exist (and will not be auto-created)."""


def check_cluster(settings: Settings, topics: Iterable[str], timeout_s: float = 10.0) -> None:
    """Fail fast, before producing anything: the cluster answers and every topic exists."""
    admin = AdminClient(admin_config(settings))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnreachableError(
            f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout_s:g}s ({exc.args[0].str()}); "
            "start the embedded broker with `featurestream stack up` or set FEATURESTREAM_KAFKA__BOOTSTRAP_SERVERS"
        ) from exc
    missing = [topic for topic in dict.fromkeys(topics) if topic not in metadata.topics]
    deadline = time.monotonic() + min(timeout_s, 3.0)
    while missing and time.monotonic() < deadline:
        # A topic created a moment ago may not be in every broker's metadata yet: look again briefly.
        time.sleep(0.2)
        metadata = admin.list_topics(timeout=timeout_s)
        missing = [topic for topic in missing if topic not in metadata.topics]
    if missing:
        raise TopicMissingError(
            f"topic(s) {', '.join(missing)} do not exist on {settings.bootstrap_servers}; "
            "`featurestream stack up` creates the project's topics (names under kafka.topics in the settings)"
        )


@dataclass
class TopicCounts:
    produced: int = 0
    failed: int = 0
    bytes: int = 0

    @property
    def delivered(self) -> int:
        return self.produced - self.failed


@dataclass
class DeliveryReport:
    """Per topic: records handed to the producer, failed, and value bytes; plus failure reasons."""

    topics: dict[str, TopicCounts] = field(default_factory=dict)
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def counts(self, topic: str) -> TopicCounts:
        return self.topics.setdefault(topic, TopicCounts())

    @property
    def failed(self) -> int:
        return sum(counts.failed for counts in self.topics.values())


class CountingProducer:
    """Produce and account: ``send`` never loses a record without it being counted as failed."""

    def __init__(self, settings: Settings, *, extra_config: dict[str, Any] | None = None) -> None:
        config = {**producer_config(settings), "delivery.report.only.error": True, **(extra_config or {})}
        self.report = report = DeliveryReport()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            # A closure over the report, not a bound method: no reference cycle keeps the client alive.
            if error is not None:
                report.counts(message.topic() or "?").failed += 1
                report.failure_reasons[error.str()] += 1

        self._producer = Producer({**config, "on_delivery": on_delivery})

    def _count_rejected(self, topic: str, exc: KafkaException) -> None:
        counts = self.report.counts(topic)
        counts.produced += 1
        counts.failed += 1
        self.report.failure_reasons[exc.args[0].str()] += 1

    def send(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """One record; waits for queue room rather than dropping it."""
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                self._producer.poll(0.05)  # queue full: serve delivery reports until there is room
            except KafkaException as exc:  # rejected locally (e.g. larger than message.max.bytes)
                self._count_rejected(topic, exc)
                return
        counts = self.report.counts(topic)
        counts.produced += 1
        counts.bytes += len(value)

    def send_many(self, topic: str, values: list[bytes], keys: Sequence[str | None]) -> None:
        """The hot loop: many records to one topic, no headers; the exceptional paths count their own records."""
        produce = self._producer.produce
        handled = handled_bytes = 0  # records the slow or rejected paths have counted already
        for value, key in zip(values, keys, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:
                self.send(topic, value, key)  # slow path: waits for room, counts the record itself
            except KafkaException as exc:
                self._count_rejected(topic, exc)
            else:
                continue
            handled += 1
            handled_bytes += len(value)
        counts = self.report.counts(topic)
        counts.produced += len(values) - handled
        counts.bytes += sum(map(len, values)) - handled_bytes
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> DeliveryReport:
        """Wait for delivery. Records not confirmed by the timeout are purged, which reports each of them as
        failed to the delivery callback (per topic, with the reason), so the counts stay exact."""
        if self._producer.flush(timeout_s):
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.flush(10.0)
        return self.report

    def __len__(self) -> int:
        """Records queued or in flight."""
        return len(self._producer)
