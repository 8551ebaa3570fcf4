"""confluent-kafka against the real broker: plain and transactional produce, read back."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from pipelines.config import Settings
from pipelines.kafka.client_config import consumer_config, producer_config


def _consume_all(settings: Settings, topic: str, *, read_committed: bool, expected_at_least: int) -> list[bytes]:
    consumer = Consumer(consumer_config(settings, f"test-{uuid.uuid4()}", read_committed=read_committed))
    consumer.subscribe([topic])
    values: list[bytes] = []
    idle_polls = 0
    try:
        while idle_polls < 10 or len(values) < expected_at_least:
            message = consumer.poll(1.0)
            if message is None:
                idle_polls += 1
                if idle_polls > 60:
                    break
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_plain_produce_round_trips(kafka: Settings, topic: str) -> None:
    producer = Producer(producer_config(kafka))
    sent = [f"event-{i}".encode() for i in range(500)]
    for i, value in enumerate(sent):
        producer.produce(topic, key=str(i % 7).encode(), value=value)
    assert producer.flush(30) == 0
    received = _consume_all(kafka, topic, read_committed=True, expected_at_least=len(sent))
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

    committed_view = _consume_all(kafka, topic, read_committed=True, expected_at_least=100)
    assert sorted(committed_view) == sorted(f"committed-{i}".encode() for i in range(100))
    uncommitted_view = _consume_all(kafka, topic, read_committed=False, expected_at_least=150)
    assert len([v for v in uncommitted_view if v.startswith(b"aborted-")]) == 50
