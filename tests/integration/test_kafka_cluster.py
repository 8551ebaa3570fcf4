"""A 3-node KRaft cluster on loopback: replicated topics, and transactions that survive a broker's SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import ConfigResource
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.errors import ConfigurationError
from pipelines.kafka.client_config import producer_config
from pipelines.kafka.topics import admin_client, describe_topics, ensure_topics
from pipelines.stack.kafka_cluster import KafkaCluster
from pipelines.testing import unique_topic
from pipelines.testing.cluster import cluster_settings
from pipelines.testing.kafka import read_topic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    settings = cluster_settings(tmp_path_factory.mktemp("kraft-cluster"), brokers=3)
    kafka = KafkaCluster(settings)
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.down()


def _topic_config(settings: Settings, topic: str, name: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = admin_client(settings)  # kept referenced: a collected client cancels its futures
    deadline = time.monotonic() + 30
    while True:  # a just-created topic reaches every broker's metadata a moment later
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=30)
            return str(configs[name].value)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_project_topics_are_replicated_three_times_with_min_isr_two(cluster: KafkaCluster) -> None:
    settings = cluster.settings
    assert settings.kafka.replication_factor == 3 and settings.kafka.min_isr == 2
    assert len(settings.bootstrap_servers.split(",")) == 3  # every client bootstraps from every node
    cluster.create_project_topics()
    for topic in settings.kafka.topics.all():
        _wait_for_full_isr(settings, topic, timeout_s=30)  # also: until every broker's metadata has the topics
    infos = describe_topics(admin_client(settings), settings.kafka.topics.all())
    assert {info.replication_factor for info in infos} == {3}
    assert _topic_config(settings, settings.kafka.topics.scores, "min.insync.replicas") == "2"
    # Topics a job creates without explicit settings get the same from the brokers' defaults.
    topic = unique_topic("defaults")
    ensure_topics(admin_client(settings), [topic], partitions=2, replication_factor=settings.kafka.replication_factor)
    assert _topic_config(settings, topic, "min.insync.replicas") == "2"


def test_transactions_survive_a_broker_sigkill_and_its_restart(cluster: KafkaCluster) -> None:
    """Produce in committed transactions while the leader of partition 0 is SIGKILLed, then restart it: a
    read_committed consumer sees every committed record once, and the restarted node rejoins every ISR."""
    settings = cluster.settings
    topic = unique_topic("failover")
    ensure_topics(admin_client(settings), [topic], partitions=3, replication_factor=3)
    producer = Producer({**producer_config(settings, transactional_id=f"failover-{topic}"), "linger.ms": 5})
    producer.init_transactions(60)

    def committed_batch(start: int, count: int) -> None:
        producer.begin_transaction()
        for n in range(start, start + count):
            producer.produce(topic, key=str(n).encode(), value=str(n).encode())
        producer.commit_transaction(120)

    committed_batch(0, 500)
    leader = admin_client(settings).list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    victim = cluster.nodes[leader - 1]
    pid = victim.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for batch in range(1, 6):  # while the node is gone: leaders move, min ISR 2 still holds
        committed_batch(batch * 500, 500)
    victim.up()  # restarted on its own data
    cluster.wait_for_brokers(3)
    committed_batch(3000, 500)
    producer.flush(30)

    _wait_for_full_isr(settings, topic)
    values = sorted(int(message.value()) for message in read_topic(settings, topic))
    assert values == list(range(3500))


def _wait_for_full_isr(settings: Settings, topic: str, timeout_s: float = 120.0) -> None:
    """Until every partition has 3 in-sync replicas: the restarted node caught up and rejoined."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        partitions = admin_client(settings).list_topics(topic, timeout=10).topics[topic].partitions.values()
        if partitions and all(len(partition.isrs) == 3 for partition in partitions):
            return
        time.sleep(1)
    pytest.fail("the restarted broker did not rejoin the in-sync replicas in time")


def test_status_lists_every_node(cluster: KafkaCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = cluster.settings.stack
    monkeypatch.setenv("FEATURESTREAM_STACK__STATE_DIR", str(stack.state_dir))
    monkeypatch.setenv("FEATURESTREAM_STACK__BROKERS", "3")
    monkeypatch.setenv("FEATURESTREAM_STACK__BROKER_PORT", str(stack.broker_port))
    monkeypatch.setenv("FEATURESTREAM_STACK__CONTROLLER_PORT", str(stack.controller_port))
    result = CliRunner().invoke(app, ["stack", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("running") >= 3 and "kafka node 3" in result.output


def test_too_few_brokers_for_the_replication_factor_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["stack", "up", "--brokers", "2"],
        env={"FEATURESTREAM_STACK__STATE_DIR": str(tmp_path), "FEATURESTREAM_KAFKA__REPLICATION_FACTOR": "3"},
    )
    assert isinstance(result.exception, ConfigurationError)
    assert "replication_factor=3 needs at least that many brokers" in str(result.exception)
    assert not (tmp_path / "kafka").exists()  # refused before anything started
