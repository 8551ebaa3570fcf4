"""Spark's own Kafka source, configured from settings (servers, SASL/SSL, isolation, offsets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pipelines.config import Settings
from pipelines.kafka.client_config import spark_kafka_options

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

StartingOffsets = Literal["earliest", "latest"]


def read_kafka_stream(
    spark: SparkSession,
    settings: Settings,
    topic: str,
    *,
    starting_offsets: StartingOffsets = "earliest",
    max_offsets_per_trigger: int | None = None,
    read_tasks: int | None = None,
) -> DataFrame:
    """A streaming DataFrame of the topic's records (key, value, topic, partition, offset, timestamp, ...).

    The Java client reads uncommitted data unless told otherwise; read_committed keeps aborted transactional
    records out. ``starting_offsets`` applies only to a new checkpoint: a restart resumes from the checkpoint.
    ``read_tasks`` is how many Spark tasks read each micro-batch: more than the topic's partitions splits them
    (Spark's ``minPartitions``), fewer merges them (``coalesce``, no shuffle). With 3 topic partitions on 2 cores
    one task would otherwise run alone while the other core idles: more tasks spread a large batch, and two tasks
    read a small batch in one wave (a task costs a fixed ~0.1 s whatever its size, which a real-time stream's
    small batches feel).
    """
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings))
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("kafka.isolation.level", "read_committed")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", "true")
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    if read_tasks is None:
        return reader.load()
    return reader.option("minPartitions", str(read_tasks)).load().coalesce(read_tasks)
