"""A multi-node Apache Kafka cluster in KRaft mode on loopback: `featurestream stack up --brokers 3`.

Every node is a combined broker + controller (``process.roles=broker,controller``) and the controller quorum is
all of them (a static voter set). Why combined rather than a separate controller quorum: on one 2-core machine a
separate quorum would cost three more JVMs for no gain in what the cluster shows, and a combined 3-node quorum
still tolerates the loss of any one node, broker and controller together. A production cluster runs the
controllers on their own nodes (infra/k8s's Strimzi resources do: a ``controller`` and a ``broker`` node pool).

With 3 or more nodes, topics get replication factor 3 and ``min.insync.replicas=2`` (the project's topics, topics
created without explicit settings, and the internal consumer-offsets and transaction-state topics), so with
``acks=all`` an acknowledged write is on two brokers and one broker may die without losing it or stopping the
producers. Node i (0-based, node id i + 1) listens on ``broker_port + 2i`` and ``controller_port + 2i``; its data
and logs live under ``<state_dir>/kafka/node-<id>``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from pipelines.config import Settings
from pipelines.kafka.topics import ensure_topics
from pipelines.stack.kafka_broker import BrokerStartError, BrokerStatus, KafkaBroker


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[BrokerStatus]
    bootstrap_servers: str

    @property
    def running(self) -> bool:
        return any(node.running for node in self.nodes)


class KafkaCluster:
    """Start, stop and inspect the embedded cluster of ``stack.brokers`` KRaft nodes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nodes = [KafkaBroker(settings, node=node) for node in range(settings.stack.brokers)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def status(self) -> ClusterStatus:
        return ClusterStatus([node.status() for node in self.nodes], self.bootstrap_servers)

    def up(self) -> bool:
        """Start the nodes that do not run (all of them first, then wait: the quorum needs a majority), and wait
        until every broker has registered. True if any node was started now."""
        started = [node.launch() for node in self.nodes]
        for node in self.nodes:
            node.wait_until_ready()
        self.wait_for_brokers(len(self.nodes))
        return any(started)

    def down(self) -> bool:
        """Stop every node this stack started, including nodes of an earlier, larger cluster in the same state dir."""
        nodes = [
            KafkaBroker(self.settings, node=int(pid_file.parent.name.split("-")[1]) - 1)
            for pid_file in sorted((self.settings.stack.state_dir / "kafka").glob("node-*/broker.pid"))
        ]
        # SIGTERM to all first: stopped one by one, the last nodes would wait for a quorum that is already gone.
        for node in nodes:
            pid = node.process.pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        stopped = False
        for node in nodes:
            stopped |= node.down()
        return stopped

    def wait_for_brokers(self, count: int) -> None:
        """Block until the cluster's metadata lists ``count`` brokers (a restarted node has rejoined)."""
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        admin = self._admin()
        seen = 0
        while time.monotonic() < deadline:
            try:
                seen = len(admin.list_topics(timeout=2.0).brokers)
                if seen >= count:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise BrokerStartError(f"only {seen} of {count} brokers registered with the cluster in time")

    def create_project_topics(self) -> list[str]:
        """The project's topics with the settings' replication factor and min.insync.replicas."""
        kafka = self.settings.kafka
        return ensure_topics(
            self._admin(),
            kafka.topics.all(),
            partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            config={"min.insync.replicas": str(kafka.min_isr)},
        )

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap_servers, "client.id": "featurestream-stack"})


def embedded_kafka(settings: Settings) -> KafkaBroker | KafkaCluster:
    """The stack's Kafka for these settings: the single broker, or the cluster when ``stack.brokers`` > 1."""
    if settings.stack.brokers > 1:
        return KafkaCluster(settings)
    return KafkaBroker(settings)
