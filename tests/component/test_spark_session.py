from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql.functions import struct
from pyspark.testing import assertDataFrameEqual


def test_session_runs_python_workers_from_the_project_environment(spark: SparkSession) -> None:
    import sys

    executables = spark.sparkContext.parallelize(range(4), 2).map(lambda _: __import__("sys").executable).collect()
    assert set(executables) == {sys.executable}


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
