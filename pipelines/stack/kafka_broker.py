"""A real single-node Apache Kafka broker in KRaft mode (combined broker + controller) on loopback.

Started from the pinned jars in ``infra/jars/kafka-broker`` with the JVM on PATH (or ``JAVA_HOME``); its
data, logs and pid file live under ``<state_dir>/kafka``. On one broker, transactions need the transaction
state log's replication factor and min ISR at 1, or ``init_transactions()`` times out.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.topics import ensure_topics
from pipelines.stack.jars import BROKER_JARS, jar_folder
from pipelines.stack.processes import ManagedProcess, port_in_use, tail, wait_for_port

LOG4J_CONFIG = PROJECT_ROOT / "infra" / "kafka" / "log4j2.properties"
NODE_ID = 1


class BrokerStartError(FeaturestreamError):
    """The broker did not come up; the message carries the reason and its log tail."""


@dataclass(frozen=True)
class BrokerLayout:
    """Files of one embedded broker under the state directory."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def properties_file(self) -> Path:
        return self.root / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "console.out"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    state_dir: Path


def render_server_properties(
    *,
    host: str,
    broker_port: int,
    controller_port: int,
    data_dir: Path,
    default_partitions: int,
    node_id: int = NODE_ID,
    quorum_voters: str | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> str:
    """server.properties for a combined broker+controller node.

    Alone (the defaults), it is its own quorum and every internal topic has one replica, so transactions work on
    one node. In a cluster (``quorum_voters`` lists every node's controller), internal topics (consumer offsets,
    transaction state) get ``replication_factor`` replicas and ``min_insync_replicas``, and so do topics created
    without explicit settings.
    """
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": quorum_voters or f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{broker_port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(default_partitions),
        "default.replication.factor": str(replication_factor),
        "min.insync.replicas": str(min_insync_replicas),
        "offsets.topic.replication.factor": str(replication_factor),
        "transaction.state.log.replication.factor": str(replication_factor),
        "transaction.state.log.min.isr": str(min_insync_replicas),
        "share.coordinator.state.topic.replication.factor": str(replication_factor),
        "share.coordinator.state.topic.min.isr": str(min_insync_replicas),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in Kafka's URL-safe base64 form."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerStartError(
            "Java not found: install a JDK 17 (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
        )
    return java


class KafkaBroker:
    """Start, stop and inspect the embedded broker described by the settings.

    With ``node`` unset it is the single-node stack (data in ``<state_dir>/kafka``). With ``node`` set it is node
    ``node`` (0-based, KRaft node id ``node + 1``) of the multi-node cluster that
    :class:`~pipelines.stack.kafka_cluster.KafkaCluster` runs, with its data in ``<state_dir>/kafka/node-<id>``.
    """

    def __init__(self, settings: Settings, node: int | None = None) -> None:
        self.settings = settings
        self.stack = settings.stack
        self.node = node
        root = self.stack.state_dir / "kafka"
        self.node_id = NODE_ID if node is None else node + 1
        self.layout = BrokerLayout(root if node is None else root / f"node-{self.node_id}")
        self.broker_port, self.controller_port = self.stack.node_ports(node or 0)
        self.process = ManagedProcess("kafka-broker", self.layout.pid_file, str(self.layout.properties_file))

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.stack.host}:{self.broker_port}"

    def status(self) -> BrokerStatus:
        pid = self.process.pid()
        return BrokerStatus(pid is not None, pid, self.bootstrap_servers, self.stack.state_dir)

    def up(self) -> bool:
        """Start the broker unless it already runs; wait until it answers metadata requests.

        Returns True if it was started now, False if it was already running.
        """
        started = self.launch()
        self._wait_until_ready(time.monotonic() + self.stack.start_timeout_s)
        return started

    def launch(self) -> bool:
        """Start the JVM unless it already runs, without waiting for it (a cluster starts all nodes first: a
        KRaft quorum needs a majority of its voters before any of them answers). True if started now."""
        if self.process.pid() is not None:
            return False
        java = find_java()
        jars = jar_folder(self.stack.jars_dir, BROKER_JARS)
        for port in (self.broker_port, self.controller_port):
            if port_in_use(self.stack.host, port):
                raise BrokerStartError(
                    f"port {port} on {self.stack.host} is already in use: stop what holds it, or choose other "
                    "ports with FEATURESTREAM_STACK__BROKER_PORT / FEATURESTREAM_STACK__CONTROLLER_PORT"
                )
        self._write_config()
        if not self.layout.formatted:
            self._format_storage(java, jars)
        self.process.start(
            [
                java,
                f"-Xmx{self.stack.broker_heap}",
                f"-Xms{self.stack.broker_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.layout.logs_dir}",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp",
                f"{jars}/*",
                "kafka.Kafka",
                str(self.layout.properties_file),
            ],
            log_file=self.layout.console_log,
        )
        return True

    def wait_until_ready(self) -> None:
        self._wait_until_ready(time.monotonic() + self.stack.start_timeout_s)

    def down(self) -> bool:
        """Stop the broker this stack started (by its pid file). True if one was running."""
        return self.process.stop()

    def create_project_topics(self) -> list[str]:
        kafka = self.settings.kafka
        return ensure_topics(
            self._admin(),
            kafka.topics.all(),
            partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
        )

    def _write_config(self) -> None:
        self.layout.data_dir.mkdir(parents=True, exist_ok=True)
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        cluster: dict[str, object] = {}
        if self.node is not None:
            voters = ",".join(
                f"{node + 1}@{self.stack.host}:{self.stack.node_ports(node)[1]}" for node in range(self.stack.brokers)
            )
            replicas = min(3, self.stack.brokers)
            cluster = {
                "node_id": self.node_id,
                "quorum_voters": voters,
                "replication_factor": replicas,
                "min_insync_replicas": max(1, replicas - 1),
            }
        self.layout.properties_file.write_text(
            render_server_properties(
                host=self.stack.host,
                broker_port=self.broker_port,
                controller_port=self.controller_port,
                data_dir=self.layout.data_dir,
                default_partitions=self.settings.kafka.partitions,
                **cluster,  # type: ignore[arg-type]
            )
        )

    def _format_storage(self, java: str, jars: Path) -> None:
        """Format the KRaft log directory once (kafka-storage.sh format), as a fresh cluster."""
        result = subprocess.run(
            [
                java,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                f"-Dkafka.logs.dir={self.layout.logs_dir}",
                "-cp",
                f"{jars}/*",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={self._cluster_id()}",  # one glued argument: an id may start with "-"
                "--config",
                str(self.layout.properties_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft storage in {self.layout.data_dir} failed:\n{result.stdout}{result.stderr}"
            )

    def _cluster_id(self) -> str:
        """A fresh id for a single node; every node of a cluster must be formatted with the same one."""
        if self.node is None:
            return new_cluster_id()
        id_file = self.stack.state_dir / "kafka" / "cluster.id"
        if not id_file.is_file():
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(new_cluster_id())
        return id_file.read_text().strip()

    def _wait_until_ready(self, deadline: float) -> None:
        """Block until the broker's port accepts and it answers a metadata request, or explain why not."""
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise BrokerStartError(self._failure("the broker process exited during start-up"))
            if wait_for_port(self.stack.host, self.broker_port, min(deadline, time.monotonic() + 1.0)):
                break
        else:
            raise BrokerStartError(self._failure(f"no listener on {self.bootstrap_servers} in time"))
        admin = self._admin()
        while time.monotonic() < deadline:
            try:
                metadata = admin.list_topics(timeout=2.0)
                if metadata.brokers:
                    return
            except Exception:
                pass
            if self.process.pid() is None:
                raise BrokerStartError(self._failure("the broker process exited during start-up"))
            time.sleep(0.2)
        raise BrokerStartError(self._failure("the broker did not answer metadata requests in time"))

    def _admin(self) -> AdminClient:
        """An admin client for this broker: it listens in plaintext on loopback, whatever kafka.security says."""
        return AdminClient({"bootstrap.servers": self.bootstrap_servers, "client.id": "featurestream-stack"})

    def _failure(self, reason: str) -> str:
        log = tail(self.layout.server_log) or tail(self.layout.console_log)
        return f"{reason} (logs in {self.layout.logs_dir}); last lines:\n{log}"
