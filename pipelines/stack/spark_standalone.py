"""A Spark standalone cluster on loopback from the installed Spark distribution: `stack up --spark-workers 2`.

The pyspark wheel is a complete Spark distribution (``pyspark/jars``, ``pyspark/bin/spark-class``), so the master
and workers run the very Spark version the jobs are built against, launched the way Spark's own ``start-master.sh``
/ ``start-worker.sh`` do (``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), each as a
detached process with a pid file. Every worker gets its own work and scratch directories
(``<state_dir>/spark/worker-<n>``): executors fetch the job's jars and Python files into them from the driver, as
on separate machines. Jobs reach the cluster with ``featurestream submit stream --master spark://host:port``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.stack.kafka_broker import find_java
from pipelines.stack.processes import ManagedProcess, child_environment, port_in_use, tail, wait_for_port

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkClusterError(FeaturestreamError):
    """The standalone master or a worker did not come up; the message carries the reason and a log tail."""


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    state: str
    cores: int
    memory_mb: int


@dataclass(frozen=True)
class SparkClusterStatus:
    master_running: bool
    master_url: str
    workers_running: int
    workers_configured: int


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark wheel."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").is_file() or not (home / "jars").is_dir():
        raise SparkClusterError(f"{home} holds no Spark distribution (bin/spark-class, jars/): reinstall pyspark")
    return home


def render_spark_properties(entries: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in entries.items())


class SparkStandalone:
    """Start, stop and inspect the standalone master and ``stack.spark_workers`` workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = settings.stack
        self.root = self.stack.state_dir / "spark"

    @property
    def master_url(self) -> str:
        return f"spark://{self.stack.host}:{self.stack.spark_master_port}"

    @property
    def webui_url(self) -> str:
        return f"http://{self.stack.host}:{self.stack.spark_master_webui_port}"

    def _properties_file(self, name: str) -> Path:
        return self.root / name / "spark.properties"

    def _process(self, name: str) -> ManagedProcess:
        # The properties file is on the command line: a pid file can only match the daemon we started.
        return ManagedProcess(f"spark-{name}", self.root / name / "daemon.pid", str(self._properties_file(name)))

    def worker_names(self) -> list[str]:
        return [f"worker-{n}" for n in range(1, self.stack.spark_workers + 1)]

    def status(self) -> SparkClusterStatus:
        running = sum(self._process(name).pid() is not None for name in self._recorded_workers())
        return SparkClusterStatus(
            self._process("master").pid() is not None, self.master_url, running, self.stack.spark_workers
        )

    def up(self) -> bool:
        """Start the master and the workers that do not run; wait until all workers are ALIVE at the master."""
        if self.stack.spark_workers < 1:
            raise SparkClusterError("stack.spark_workers is 0: nothing to start (`stack up --spark-workers N`)")
        home, java = spark_home(), find_java()
        started = False
        master = self._process("master")
        if master.pid() is None:
            for port in (self.stack.spark_master_port, self.stack.spark_master_webui_port):
                if port_in_use(self.stack.host, port):
                    raise SparkClusterError(
                        f"port {port} on {self.stack.host} is already in use: choose others with "
                        "FEATURESTREAM_STACK__SPARK_MASTER_PORT / FEATURESTREAM_STACK__SPARK_MASTER_WEBUI_PORT"
                    )
            self._launch(
                "master",
                [
                    MASTER_CLASS,
                    "--host",
                    self.stack.host,
                    "--port",
                    str(self.stack.spark_master_port),
                    "--webui-port",
                    str(self.stack.spark_master_webui_port),
                ],
                home,
                java,
                {"spark.master.rest.enabled": "false"},
            )
            started = True
            if not wait_for_port(self.stack.host, self.stack.spark_master_port, time.monotonic() + 60):
                raise SparkClusterError(self._failure("master", "the master did not listen in time"))
        for name in self.worker_names():
            if self._process(name).pid() is None:
                self.start_worker(name)
                started = True
        self.wait_for_workers(self.stack.spark_workers)
        return started

    def start_worker(self, name: str) -> None:
        """Launch one worker (used by `up`, and to bring back a worker a test killed)."""
        worker_dir = self.root / name
        self._launch(
            name,
            [
                WORKER_CLASS,
                "--host",
                self.stack.host,
                "--cores",
                str(self.stack.spark_worker_cores),
                "--memory",
                self.stack.spark_worker_memory,
                "--work-dir",
                str(worker_dir / "work"),
                "--webui-port",
                "0",
                self.master_url,
            ],
            spark_home(),
            find_java(),
            {"spark.worker.cleanup.enabled": "true", "spark.worker.cleanup.appDataTtl": "86400"},
            local_dir=worker_dir / "local",
        )

    def worker_pid(self, name: str) -> int | None:
        return self._process(name).pid()

    def master_pid(self) -> int | None:
        return self._process("master").pid()

    def down(self) -> bool:
        """Stop the workers (those of an earlier, larger cluster too), then the master."""
        stopped = False
        for name in self._recorded_workers():
            stopped |= self._process(name).stop()
        return self._process("master").stop() or stopped

    def workers(self) -> list[WorkerInfo]:
        """Workers as the master sees them (its web UI's JSON), dead ones included."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            state = json.load(response)
        return [
            WorkerInfo(worker["id"], worker["state"], int(worker["cores"]), int(worker["memory"]))
            for worker in state.get("workers", [])
        ]

    def wait_for_workers(self, count: int, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.stack.start_timeout_s)
        alive = 0
        while time.monotonic() < deadline:
            if self._process("master").pid() is None:
                raise SparkClusterError(self._failure("master", "the master exited"))
            try:
                alive = sum(worker.state == "ALIVE" for worker in self.workers())
            except OSError:
                alive = 0
            if alive >= count:
                return
            time.sleep(0.3)
        name = self.worker_names()[-1] if self.worker_names() else "master"
        raise SparkClusterError(self._failure(name, f"only {alive} of {count} workers registered in time"))

    def _recorded_workers(self) -> list[str]:
        return sorted(path.parent.name for path in self.root.glob("worker-*/daemon.pid"))

    def _launch(
        self,
        name: str,
        arguments: list[str],
        home: Path,
        java: str,
        properties: dict[str, str],
        local_dir: Path | None = None,
    ) -> None:
        folder = self.root / name
        logs = folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._properties_file(name).write_text(render_spark_properties(properties))
        env = child_environment(
            SPARK_HOME=str(home),
            JAVA_HOME=str(Path(java).resolve().parent.parent),
            SPARK_LOCAL_IP=self.stack.host,
            SPARK_LOG_DIR=str(logs),
            SPARK_DAEMON_MEMORY="512m",
        )
        if local_dir is not None:
            local_dir.mkdir(parents=True, exist_ok=True)
            env["SPARK_LOCAL_DIRS"] = str(local_dir)  # executors' scratch space: per worker, as on its own disk
        spark_class = str(home / "bin" / "spark-class")
        self._process(name).start(
            [spark_class, *arguments, "--properties-file", str(self._properties_file(name))],
            log_file=logs / "console.out",
            env=env,
        )

    def _failure(self, name: str, reason: str) -> str:
        logs = self.root / name / "logs"
        return f"{reason} (logs in {logs}); last lines:\n{tail(logs / 'console.out')}"
