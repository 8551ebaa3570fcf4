"""Spark's own Kafka source, configured from settings (servers, SASL/SSL, isolation, offsets)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pipelines.config import Settings
from pipelines.kafka.client_config import spark_kafka_options

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

StartingOffsets = Literal["earliest", "latest"]

FETCH_MAX_WAIT_MS = 10
"""How long the broker may hold a fetch that finds no new data (the Java client's default: 500 ms).

Spark's reader fetches past the last record of a micro-batch's offset range when that range ends at the end of
the log, and such a fetch waited the full 500 ms: at 5,000 events/s the batch after a pause in traffic took
1.2-1.8 s instead of ~0.75 s, its read tasks ~500 or ~1,000 ms longer (Spark's event log; every run showed it).
A fetch that finds data returns at once either way, so a short wait costs a busy stream nothing.
"""

MAX_SPLITS_PER_TASK = 8
"""Beyond this many offset ranges per task (each is a separate Kafka fetch), :func:`read_splits` settles for
tasks of nearly equal size."""


def read_kafka_stream(
    spark: SparkSession,
    settings: Settings,
    topic: str,
    *,
    starting_offsets: StartingOffsets = "earliest",
    max_offsets_per_trigger: int | None = None,
    read_tasks: int | None = None,
    topic_partitions: int | None = None,
) -> DataFrame:
    """A streaming DataFrame of the topic's records (key, value, topic, partition, offset, timestamp, ...).

    The Java client reads uncommitted data unless told otherwise; read_committed keeps aborted transactional
    records out. ``starting_offsets`` applies only to a new checkpoint: a restart resumes from the checkpoint.
    ``read_tasks`` is how many Spark tasks read each micro-batch (:func:`read_splits`): with 3 topic partitions on
    2 cores, one task per topic partition would run alone in a second wave while the other core idles, and every
    task costs a fixed ~0.1 s whatever its size (GX's set-up above all).
    """
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings))
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("kafka.isolation.level", "read_committed")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", "true")
        .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    if read_tasks is None:
        return reader.load()
    splits = read_splits(read_tasks, topic_partitions)
    return reader.option("minPartitions", str(splits)).load().coalesce(read_tasks)


def read_splits(read_tasks: int, topic_partitions: int | None) -> int:
    """Offset ranges to cut a micro-batch into (Spark's ``minPartitions``) so that ``coalesce(read_tasks)`` gives
    tasks of equal size: the least common multiple of the two counts.

    Spark cuts each topic partition into ``round(its share x minPartitions)`` ranges (at least one), and coalescing
    merges consecutive ranges: 3 topic partitions read by 2 tasks would give one task two thirds of the batch, and
    ``minPartitions=4`` still rounds to one range each; 6 ranges (2 per topic partition) merge into 2 halves.
    """
    if not topic_partitions:
        return read_tasks
    splits = math.lcm(read_tasks, topic_partitions)
    if splits > MAX_SPLITS_PER_TASK * read_tasks:  # many partitions: near-equal tasks from whole ones are enough
        splits = read_tasks * -(-topic_partitions // read_tasks)
    return splits
