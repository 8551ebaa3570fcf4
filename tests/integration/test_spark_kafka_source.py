"""Spark's own Kafka source reads exactly the committed records from the real broker."""

from __future__ import annotations

import uuid
from pathlib import Path

from confluent_kafka import Producer
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from pipelines.config import Settings
from pipelines.kafka.client_config import producer_config
from pipelines.spark.kafka_source import read_kafka_stream


def test_structured_streaming_reads_exactly_the_committed_records(
    spark: SparkSession, kafka: Settings, topic: str, tmp_path: Path
) -> None:
    producer = Producer(producer_config(kafka, transactional_id=f"tx-{uuid.uuid4()}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    expected = [(f"k{i}", f"v{i}") for i in range(300)]
    for key, value in expected:
        producer.produce(topic, key=key.encode(), value=value.encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"never", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)

    stream = read_kafka_stream(spark, kafka, topic)
    query = (
        stream.selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value")
        .writeStream.format("memory")
        .queryName("records_" + uuid.uuid4().hex[:8])
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination(180)
        assert query.exception() is None
        got = spark.table(query.name)
        assertDataFrameEqual(got, spark.createDataFrame(expected, "key string, value string"))
    finally:
        query.stop()


def test_a_micro_batch_is_read_by_the_configured_number_of_tasks(
    spark: SparkSession, kafka: Settings, topic: str, tmp_path: Path
) -> None:
    """``read_tasks`` below the topic's 3 partitions merges them into equal tasks, above splits them; no record is
    lost either way."""
    producer = Producer(producer_config(kafka))
    for i in range(600):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3)
    producer.flush(30)
    for read_tasks in (2, 6):
        seen: list[list[int]] = []

        def remember(batch: DataFrame, _: int, seen: list[list[int]] = seen) -> None:
            seen.append(batch.rdd.glom().map(len).collect())

        query = (
            read_kafka_stream(spark, kafka, topic, read_tasks=read_tasks, topic_partitions=3)
            .writeStream.foreachBatch(remember)
            .option("checkpointLocation", str(tmp_path / f"checkpoint-{read_tasks}"))
            .trigger(availableNow=True)
            .start()
        )
        try:
            query.awaitTermination(180)
            assert query.exception() is None
        finally:
            query.stop()
        assert seen == [[600 // read_tasks] * read_tasks]
