"""Read a topic back completely, for tests and checks: every record up to the end offsets, then stop."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipelines.config import Settings
from pipelines.kafka.client_config import consumer_config


def read_topic(settings: Settings, topic: str, *, read_committed: bool = True, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (confluent-kafka Messages), partition by partition, up to the end offsets.

    With transactions, markers take offsets too, so reading stops when the position passes the end offset,
    not at the last record. read_committed hides aborted records (the end is then the last stable offset).
    """
    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4()}", read_committed=read_committed))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        messages = []
        for partition in sorted(partitions):
            low, high = _watermarks(consumer, TopicPartition(topic, partition), timeout_s)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            idle = 0.0
            while consumer.position([TopicPartition(topic, partition)])[0].offset < high:
                message = consumer.poll(0.5)
                if message is None:
                    idle += 0.5
                    if idle > timeout_s:
                        raise TimeoutError(f"timed out reading {topic}[{partition}] up to offset {high}")
                    continue
                if message.error() is not None:
                    raise RuntimeError(f"reading {topic}[{partition}]: {message.error()}")
                messages.append(message)
        return messages
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """The partition's low and high offsets, retried while its leadership moves (a broker just restarted and
    the cluster is electing it back: NOT_LEADER_FOR_PARTITION is retriable and passes within seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            if not exc.args[0].retriable() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
