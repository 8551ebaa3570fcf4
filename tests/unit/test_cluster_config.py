"""Scale-out settings: a multi-node KRaft cluster's ports, quorum and replication, and refused contradictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigurationError
from pipelines.stack.kafka_broker import KafkaBroker, render_server_properties
from pipelines.stack.kafka_cluster import KafkaCluster, embedded_kafka
from pipelines.stack.spark_standalone import render_spark_properties, spark_home


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_three_brokers_mean_rf_three_min_isr_two_and_every_node_in_bootstrap() -> None:
    settings = load_settings(stack={"brokers": 3})
    assert settings.kafka.replication_factor == 3 and settings.kafka.min_isr == 2
    assert settings.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert [settings.stack.node_ports(n) for n in range(3)] == [(9092, 9093), (9094, 9095), (9096, 9097)]
    assert isinstance(embedded_kafka(settings), KafkaCluster)
    assert isinstance(embedded_kafka(load_settings()), KafkaBroker)


def test_an_explicit_replication_factor_wins_and_an_existing_cluster_is_left_alone() -> None:
    assert load_settings(stack={"brokers": 3}, kafka={"replication_factor": 2}).kafka.min_isr == 1
    external = load_settings(stack={"brokers": 1}, kafka={"bootstrap_servers": "b1:9092", "replication_factor": 3})
    assert external.kafka.replication_factor == 3 and external.bootstrap_servers == "b1:9092"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stack": {"brokers": 2}, "kafka": {"replication_factor": 3}}, "needs at least that many brokers"),
        ({"kafka": {"replication_factor": 1, "min_insync_replicas": 2}}, "exceeds kafka.replication_factor"),
        ({"stack": {"brokers": 3, "broker_port": 9092, "controller_port": 9094}}, "distinct ports"),
    ],
)
def test_contradictions_are_refused_clearly(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**overrides)


def test_cluster_node_properties(tmp_path: Path) -> None:
    settings = Settings(stack={"brokers": 3, "state_dir": tmp_path})
    node = KafkaBroker(settings, node=1)
    node._write_config()
    props = _properties(node.layout.properties_file.read_text())
    assert node.layout.root == tmp_path / "kafka" / "node-2"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "3"
    assert props["transaction.state.log.min.isr"] == "2" and props["min.insync.replicas"] == "2"
    assert props["default.replication.factor"] == "3"


def test_single_node_keeps_its_layout(tmp_path: Path) -> None:
    broker = KafkaBroker(Settings(stack={"state_dir": tmp_path}))
    assert broker.layout.root == tmp_path / "kafka"
    props = _properties(
        render_server_properties(
            host="127.0.0.1", broker_port=1, controller_port=2, data_dir=tmp_path, default_partitions=3
        )
    )
    assert props["min.insync.replicas"] == "1" and props["transaction.state.log.min.isr"] == "1"


def test_spark_distribution_comes_from_the_pyspark_wheel() -> None:
    home = spark_home()
    assert (home / "bin" / "spark-class").is_file()
    assert any(home.glob("jars/spark-core_*.jar"))
    assert render_spark_properties({"a.b": "c"}) == "a.b c\n"


def test_submit_to_a_standalone_master_ships_jars_and_python_and_advertises_loopback(tmp_path: Path) -> None:
    from pipelines.spark.submit import spark_submit_argv

    settings = Settings(stack={"state_dir": tmp_path})
    argv = spark_submit_argv(settings, "stream", ["--available-now"], master="spark://127.0.0.1:7077")
    confs = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--conf")
    assert argv[argv.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert "spark-sql-kafka-0-10" in argv[argv.index("--jars") + 1]  # served by the driver to every executor
    assert confs["spark.executorEnv.PYSPARK_PYTHON"] == confs["spark.pyspark.python"]
    assert confs["spark.driver.host"] == "127.0.0.1" and confs["spark.executor.memory"] == "1g"
    assert "spark.local.dir" not in confs  # the cluster manager gives each executor its own scratch space
    local = spark_submit_argv(settings, "stream")
    assert any(arg.startswith("spark.local.dir=") for arg in local) and "spark.driver.host=127.0.0.1" not in local
