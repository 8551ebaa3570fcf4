from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.functions import struct
from pyspark.testing import assertDataFrameEqual

from pipelines.config import Settings


def test_session_runs_python_workers_from_the_project_environment(spark: SparkSession) -> None:
    import sys

    executables = spark.sparkContext.parallelize(range(4), 2).map(lambda _: __import__("sys").executable).collect()
    assert set(executables) == {sys.executable}


def test_python_workers_hold_no_archive_importer(spark: SparkSession) -> None:
    """Every task re-reads the directory of each cached zip importer (``invalidate_caches``): workers have none,
    not even one left by a namespace package found in a jar (see ``pipelines.spark.worker_daemon``)."""

    def archive_importers(_: object) -> list[str]:
        import sys
        import zipimport

        cache = sys.path_importer_cache.items()
        return [key for key, finder in cache if isinstance(finder, zipimport.zipimporter)] + [
            name for name in ("org",) if name in sys.modules
        ]

    assert spark.sparkContext.parallelize(range(2), 2).flatMap(archive_importers).collect() == []


def test_the_driver_jvm_collects_with_the_configured_collector(spark: SparkSession) -> None:
    """``spark.jvm_options`` (the parallel collector by default) reaches the JVM pyspark launches."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    beans = jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert {bean.getName() for bean in beans} == {"PS Scavenge", "PS MarkSweep"}


def test_kafka_connector_is_on_the_classpath(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    # spark.jars are on Spark's own class loader (the thread's context loader), not the JVM's system one.
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    provider = loader.loadClass("org.apache.spark.sql.kafka010.KafkaSourceProvider")
    assert provider.getName() == "org.apache.spark.sql.kafka010.KafkaSourceProvider"


def test_spark_avro_round_trips_in_the_jvm(spark: SparkSession) -> None:
    from pyspark.sql.avro.functions import from_avro, to_avro

    schema = '{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}'
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id long, s string")
    encoded = df.select(to_avro(struct("id", "s"), schema).alias("v"))
    decoded = encoded.select(from_avro("v", schema).alias("r")).select("r.id", "r.s")
    assertDataFrameEqual(decoded, df)


def test_python_stages_get_arrow_batches_of_the_configured_rows(spark: SparkSession, spark_settings: Settings) -> None:
    """The session's Arrow batch size (``spark.arrow_batch_rows``) is what the Python workers receive."""
    expected = spark_settings.spark.arrow_batch_rows
    assert spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") == str(expected)

    def batch_sizes(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pylist([{"rows": batch.num_rows} for batch in batches])

    sizes = spark.range(0, 2 * expected + 5, numPartitions=1).mapInArrow(batch_sizes, "rows long").collect()
    assert [row["rows"] for row in sizes] == [expected, expected, 5]
