"""``spark.extra_conf``: further Spark settings pass through; one that featurestream manages is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.errors import ConfigurationError
from pipelines.spark.session import spark_conf


def test_extra_settings_reach_the_session_and_spark_submit(tmp_path: Path) -> None:
    from pipelines.spark.submit import spark_submit_argv

    extra = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(tmp_path / "events")}
    settings = Settings(stack={"state_dir": tmp_path}, spark={"extra_conf": extra})
    assert spark_conf(settings).items() >= extra.items()
    argv = spark_submit_argv(settings, "stream")
    assert "spark.eventLog.enabled=true" in argv


def test_driver_and_executors_run_the_configured_jvm_options(tmp_path: Path) -> None:
    conf = spark_conf(Settings(stack={"state_dir": tmp_path}))  # local[2]: the parallel collector
    # The driver, which runs every task on a local master, has the default 2g heap from the start.
    assert conf["spark.driver.extraJavaOptions"] == "-XX:+UseParallelGC -XX:MetaspaceSize=256m -Xms2048m"
    assert conf["spark.executor.extraJavaOptions"] == "-XX:+UseParallelGC -XX:MetaspaceSize=256m"
    cluster = spark_conf(Settings(stack={"state_dir": tmp_path}), master="spark://127.0.0.1:7077")
    assert "spark.executor.extraJavaOptions" not in cluster  # the JVM's default for large executor heaps
    g1 = Settings(stack={"state_dir": tmp_path}, spark={"jvm_options": "-XX:+UseG1GC"})
    assert spark_conf(g1, master="spark://127.0.0.1:7077")["spark.executor.extraJavaOptions"] == "-XX:+UseG1GC"


def test_an_extra_setting_that_featurestream_manages_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        stack={"state_dir": tmp_path}, spark={"extra_conf": {"spark.sql.shuffle.partitions": "200", "a.b": "c"}}
    )
    with pytest.raises(ConfigurationError, match=r"spark\.sql\.shuffle\.partitions.*spark/session\.py"):
        spark_conf(settings)


@pytest.mark.parametrize(
    ("read_tasks", "topic_partitions", "splits"),
    [(2, 3, 6), (2, 4, 4), (2, None, 2), (6, 3, 6), (4, 6, 12), (1, 3, 3), (16, 50, 64)],
)
def test_a_micro_batch_is_cut_into_ranges_that_merge_into_equal_tasks(
    read_tasks: int, topic_partitions: int | None, splits: int
) -> None:
    from pipelines.spark.kafka_source import read_splits

    assert read_splits(read_tasks, topic_partitions) == splits


def test_settings_with_extra_spark_conf_stay_hashable(tmp_path: Path) -> None:
    """Lookups and stores are cached by settings: a dict-valued setting must not make them unhashable."""
    one = Settings(stack={"state_dir": tmp_path}, spark={"extra_conf": {"a.b": "c", "d.e": "f"}})
    same = Settings(stack={"state_dir": tmp_path}, spark={"extra_conf": {"d.e": "f", "a.b": "c"}})
    other = Settings(stack={"state_dir": tmp_path}, spark={"extra_conf": {"a.b": "x"}})
    assert hash(one) == hash(same) and one == same and one != other


@pytest.mark.parametrize(
    ("memory", "option"),
    [("2g", "-Xms2048m"), ("2GB", "-Xms2048m"), ("1536m", "-Xms1536m"), ("3072", "-Xms3072m"), ("1t", "-Xms1048576m")],
)
def test_a_local_jvm_starts_with_its_whole_heap_in_sparks_size_syntax(tmp_path: Path, memory: str, option: str) -> None:
    conf = spark_conf(Settings(stack={"state_dir": tmp_path}, spark={"driver_memory": memory}))
    assert conf["spark.driver.extraJavaOptions"].split()[-1] == option
    assert conf["spark.driver.memory"] == memory  # the maximum stays Spark's to set


def test_a_driver_memory_that_is_not_a_size_is_refused_before_spark_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"spark\.driver_memory '2 gigs' is not a size"):
        spark_conf(Settings(stack={"state_dir": tmp_path}, spark={"driver_memory": "2 gigs"}))
