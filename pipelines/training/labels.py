"""Labels for training: a bounded read of the labels topic, then only what was known by the cut-off.

The read is a snapshot: each partition's end offset is taken first and the consumer stops there, so labels
produced while training runs cannot make two runs over "the same" data differ. The consumer is read_committed
(a label from an aborted transaction never trains a model), assigns partitions itself (no group membership,
no committed offsets: training leaves no trace on the cluster) and stops on end-of-partition too, so an open
transaction above the last stable offset cannot make it wait for ever.

A label is usable only if it was known at the training cut-off (``label_time <= cutoff``): training on labels
from the future of the cut-off would measure a model that could not have existed then. Among an event's labels
known by then, the latest wins (a chargeback reversed by a later confirmation, say).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from pipelines.config import Settings
from pipelines.kafka.client_config import consumer_config
from pipelines.serde.decoder import RecordDecoder
from pipelines.training.errors import LabelReadError

LABEL = "label"
LABEL_TIME = "label_time"
_POLL_BATCH = 10_000


@dataclass(frozen=True)
class LabelRead:
    """Decoded labels in topic order (``label_time`` as UTC timestamps) and what could not be decoded."""

    frame: pd.DataFrame
    records_read: int
    undecodable: int


@dataclass(frozen=True)
class AvailableLabels:
    """One label per event, as known at the cut-off, and why the others were set aside."""

    frame: pd.DataFrame
    cutoff: datetime
    after_cutoff: int
    superseded: int


def read_labels(settings: Settings, *, timeout_s: float | None = None) -> LabelRead:
    """Every committed record of ``kafka.topics.labels`` up to the end offsets taken at the start."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    topic = settings.kafka.topics.labels
    timeout_s = timeout_s if timeout_s is not None else settings.models.label_read_timeout_s
    request_timeout = settings.kafka.request_timeout_s
    conf = {
        **consumer_config(settings, f"featurestream-train-{uuid.uuid4().hex}", read_committed=True),
        "enable.partition.eof": True,
    }
    consumer = Consumer(conf)
    values: list[bytes | None] = []
    positions: list[tuple[int, int]] = []
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=request_timeout)
        except KafkaException as exc:
            raise LabelReadError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc.args[0].str()}") from exc
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise LabelReadError(f"labels topic {topic!r} does not exist on {settings.bootstrap_servers}")
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in sorted(described.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=request_timeout, cached=False
            )
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if starts:
            consumer.assign(starts)
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise LabelReadError(
                    f"reading {topic} timed out after {timeout_s:g}s with partitions {sorted(pending)} unfinished"
                )
            for message in consumer.consume(num_messages=_POLL_BATCH, timeout=1.0):
                partition = message.partition()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(partition)
                        continue
                    raise LabelReadError(f"error reading {topic}[{partition}]: {error.str()}")
                offset = message.offset()
                if partition not in pending or offset is None or offset >= ends[partition]:
                    continue  # past the snapshot: produced after training started
                values.append(message.value())
                positions.append((partition, offset))
            # Transaction markers take offsets too: a partition is done once its position passes the end.
            for done in consumer.position([TopicPartition(topic, p) for p in pending]):
                if done.offset >= ends[done.partition]:
                    pending.discard(done.partition)
    finally:
        consumer.close()
    return decode_labels(settings, values, positions)


def decode_labels(settings: Settings, values: list[bytes | None], positions: list[tuple[int, int]]) -> LabelRead:
    """Decode label values (both wire formats); undecodable ones are counted, not fatal."""
    decoder = RecordDecoder.from_settings(settings.models.label_subject, settings)
    decoded = decoder.decode_batch(values)
    rows = [
        {**record, "_partition": partition, "_offset": offset}
        for record, (partition, offset) in zip(decoded.records, positions, strict=True)
        if record is not None
    ]
    frame = pd.DataFrame(rows, columns=[*decoder.field_names, "_partition", "_offset"])
    label_column = settings.models.label_column
    if label_column not in decoder.field_names:
        raise LabelReadError(
            f"label subject {settings.models.label_subject!r} has no field {label_column!r} (models.label_column)"
        )
    frame[LABEL] = frame[label_column].astype(bool).astype("int8")
    frame[LABEL_TIME] = pd.to_datetime(frame[LABEL_TIME].astype("int64"), unit="ms", utc=True)
    return LabelRead(frame=frame, records_read=len(values), undecodable=len(values) - len(rows))


def available_labels(labels: pd.DataFrame, cutoff: datetime, event_id: str = "event_id") -> AvailableLabels:
    """The latest label per event among those known at ``cutoff``."""
    cutoff_ts = pd.Timestamp(cutoff)
    if cutoff_ts.tzinfo is None:
        raise ValueError("the label cut-off must be timezone-aware")
    known = labels[labels[LABEL_TIME] <= cutoff_ts]
    order = [LABEL_TIME, *[column for column in ("_partition", "_offset") if column in known.columns]]
    latest = known.sort_values(order, kind="mergesort").drop_duplicates(subset=[event_id], keep="last")
    return AvailableLabels(
        frame=latest.reset_index(drop=True),
        cutoff=cutoff_ts.to_pydatetime(),
        after_cutoff=len(labels) - len(known),
        superseded=len(known) - len(latest),
    )
