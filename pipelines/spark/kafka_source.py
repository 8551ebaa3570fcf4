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
    min_partitions: int | None = None,
) -> DataFrame:
    """A streaming DataFrame of the topic's records (key, value, topic, partition, offset, timestamp, ...).

    The Java client reads uncommitted data unless told otherwise; read_committed keeps aborted transactional
    records out. ``starting_offsets`` applies only to a new checkpoint: a restart resumes from the checkpoint.
    ``min_partitions`` splits Kafka partitions into more Spark tasks (Spark's ``minPartitions``): with 3 topic
    partitions on 2 cores, one task would otherwise run alone while the other core idles.
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
    if min_partitions is not None:
        reader = reader.option("minPartitions", str(min_partitions))
    return reader.load()
