"""confluent-kafka against the real broker: plain and transactional produce, read back."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from pipelines.config import Settings
from pipelines.kafka.client_config import producer_config
from pipelines.testing.kafka import read_topic


def test_plain_produce_round_trips(kafka: Settings, topic: str) -> None:
    producer = Producer(producer_config(kafka))
    sent = [f"event-{i}".encode() for i in range(500)]
    for i, value in enumerate(sent):
        producer.produce(topic, key=str(i % 7).encode(), value=value)
    assert producer.flush(30) == 0
    received = [m.value() for m in read_topic(kafka, topic)]
    assert sorted(received) == sorted(sent)


def test_read_committed_sees_committed_transactions_only(kafka: Settings, topic: str) -> None:
    producer = Producer(producer_config(kafka, transactional_id=f"tx-{uuid.uuid4()}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(100):
        producer.produce(topic, key=str(i).encode(), value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(50):
        producer.produce(topic, key=str(i).encode(), value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    committed_view = [m.value() for m in read_topic(kafka, topic)]
    assert sorted(committed_view) == sorted(f"committed-{i}".encode() for i in range(100))
    uncommitted_view = [m.value() for m in read_topic(kafka, topic, read_committed=False)]
    assert len([v for v in uncommitted_view if v.startswith(b"aborted-")]) == 50
