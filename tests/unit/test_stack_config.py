from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pipelines.config import PROJECT_ROOT
from pipelines.stack.jars import artifact_name, spark_connector_jars
from pipelines.stack.kafka_broker import new_cluster_id, render_server_properties


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_single_broker_properties_make_transactions_work(tmp_path: Path) -> None:
    props = _properties(
        render_server_properties(
            host="127.0.0.1",
            broker_port=19092,
            controller_port=19093,
            data_dir=tmp_path,
            default_partitions=3,
        )
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path)
    assert "zookeeper.connect" not in props


def test_cluster_ids_are_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) for cluster_id in ids)


def test_artifact_names_drop_versions() -> None:
    assert artifact_name(Path("kafka-clients-3.9.0.jar")) == "kafka-clients"
    assert artifact_name(Path("spark-sql-kafka-0-10_2.13-4.0.0.jar")) == "spark-sql-kafka-0-10_2.13"
    assert artifact_name(Path("zstd-jni-1.5.6-10.jar")) == "zstd-jni"
    assert artifact_name(Path("snappy-java-1.1.10.5.jar")) == "snappy-java"


def test_connector_jars_skip_what_pyspark_ships(tmp_path: Path) -> None:
    connectors = tmp_path / "jars" / "spark-connectors"
    shipped = tmp_path / "pyspark-jars"
    connectors.mkdir(parents=True)
    shipped.mkdir()
    for name in (
        "spark-sql-kafka-0-10_2.13-4.0.0.jar",
        "kafka-clients-3.9.0.jar",
        "snappy-java-1.1.10.5.jar",
    ):
        (connectors / name).touch()
    (shipped / "snappy-java-1.1.10.7.jar").touch()
    names = [jar.name for jar in spark_connector_jars(tmp_path / "jars", shipped)]
    assert names == ["kafka-clients-3.9.0.jar", "spark-sql-kafka-0-10_2.13-4.0.0.jar"]


def test_connector_jars_match_the_pinned_pyspark() -> None:
    """spark-sql-kafka and spark-avro must be exactly the pyspark version pyproject.toml installs."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    pin = next(dep for dep in pyproject["project"]["dependencies"] if dep.startswith("pyspark"))
    pom = (PROJECT_ROOT / "infra" / "jvm" / "spark-connectors" / "pom.xml").read_text()
    spark_version = re.search(r"<spark.version>([^<]+)</spark.version>", pom)
    assert spark_version is not None
    assert pin == f"pyspark=={spark_version.group(1)}"
    import pyspark

    assert pyspark.__version__ == spark_version.group(1)
