"""Exactly-once delivery per (batch, partition) against the real broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from pipelines.config import Settings
from pipelines.kafka import transactional_sink
from pipelines.kafka.client_config import producer_config
from pipelines.kafka.transactional_sink import ClientCache, ExactlyOnceSink, OutgoingRecord
from pipelines.testing.kafka import read_topic


def _records(topic: str, batch: int, n: int) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(topic, f"k{i}".encode(), f"b{batch}-r{i}".encode(), [("featurestream.batch", b"%d" % batch)])
        for i in range(n)
    ]


def test_a_replayed_batch_publishes_nothing_twice(kafka: Settings, topic: str) -> None:
    sink = ExactlyOnceSink(kafka, f"test-{uuid.uuid4().hex[:6]}", marker_topic=topic)
    first = sink.deliver(0, 0, _records(topic, 0, 50))
    assert (first.records, first.already_delivered) == (50, False)
    replay = sink.deliver(0, 0, _records(topic, 0, 50))
    assert replay.already_delivered and replay.records == 0
    other_partition = sink.deliver(0, 1, _records(topic, 0, 5))
    assert other_partition.records == 5
    sink.deliver(1, 0, _records(topic, 1, 10))
    assert sink.last_delivered_batch(0) == 1
    assert sink.last_delivered_batch(7) == -1

    values = [m.value() for m in read_topic(kafka, topic)]
    assert len(values) == 65
    assert len(set(values)) == 60  # batch 0's 5 records on partition 1 repeat keys/values of partition 0's


def test_a_crashed_attempt_is_fenced_and_its_records_stay_invisible(kafka: Settings, topic: str) -> None:
    sink = ExactlyOnceSink(kafka, f"test-{uuid.uuid4().hex[:6]}", marker_topic=topic)
    zombie = Producer(producer_config(kafka, transactional_id=sink.transactional_id(0)))
    zombie.init_transactions(30)
    zombie.begin_transaction()
    for record in _records(topic, 3, 20):
        zombie.produce(record.topic, key=record.key, value=b"zombie-" + (record.value or b""))
    zombie.flush(30)  # sent but never committed: the task "crashed" here

    retry = sink.deliver(3, 0, _records(topic, 3, 20))
    assert retry.records == 20
    values = [m.value() for m in read_topic(kafka, topic)]
    assert sorted(values) == sorted(f"b3-r{i}".encode() for i in range(20))


def test_a_kept_producer_fenced_by_another_worker_neither_duplicates_nor_loses(
    kafka: Settings, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers keep their producer between batches; another worker taking the partition fences it. The kept one
    must then see that batch as delivered, and take the partition back for the next batch."""
    sink = ExactlyOnceSink(kafka, f"test-{uuid.uuid4().hex[:6]}", marker_topic=topic)
    assert sink.deliver(0, 0, _records(topic, 0, 10)).records == 10  # this worker now keeps its producer
    first_worker = transactional_sink._WORKER_CLIENTS
    monkeypatch.setattr(transactional_sink, "_WORKER_CLIENTS", ClientCache())  # another worker process
    assert sink.deliver(1, 0, _records(topic, 1, 10)).records == 10  # its init_transactions fences the first
    monkeypatch.setattr(transactional_sink, "_WORKER_CLIENTS", first_worker)

    replay = sink.deliver(1, 0, _records(topic, 1, 10))  # the first worker, with its fenced producer
    assert replay.already_delivered and replay.records == 0
    assert sink.deliver(2, 0, _records(topic, 2, 10)).records == 10  # fenced: replaced by a fresh producer
    assert sink.deliver(3, 0, _records(topic, 3, 10)).records == 10  # and that one is kept

    values = sorted(m.value() for m in read_topic(kafka, topic))
    assert values == sorted(f"b{b}-r{i}".encode() for b in range(4) for i in range(10))
