"""The streaming job on the scale-out stack, by configuration alone: a 3-broker KRaft cluster (RF 3, min ISR 2),
a Spark standalone master with 2 workers (`submit stream --master spark://...`) and the Redis online store.

Faults: a broker SIGKILLed (and restarted) during a run, and a Spark worker SIGKILLed (and restarted) during
another; each run must end with exactly one score per valid event on Kafka (read_committed) and online features
that never went back in time (each card's online values are those of its latest event). Traffic is small: the
point is the failure handling, not throughput (benchmarks/cluster_throughput.py measures that).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest

from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES
from pipelines.feast_io.paths import offline_view_path
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.produce.transactions import produce_transactions
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.submit import spark_submit_argv
from pipelines.spark.worker_daemon import STACK_DUMP_SIGNAL
from pipelines.stack.kafka_cluster import KafkaCluster
from pipelines.stack.redis_server import RedisServer
from pipelines.stack.spark_standalone import SparkStandalone
from pipelines.testing import stream_settings
from pipelines.testing.cluster import cluster_environment, cluster_settings
from pipelines.testing.kafka import read_topic
from pipelines.testing.models import register_synthetic_model

EVENTS = 2_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("cluster-stack")
    base = cluster_settings(
        root,
        brokers=3,
        spark_workers=2,
        feast={"online_store": "redis"},
    )
    settings = stream_settings(base, root)
    kafka, redis, spark = KafkaCluster(settings), RedisServer(settings), SparkStandalone(settings)
    try:
        kafka.up()
        redis.up()
        spark.up()
        ensure_topics(
            admin_client(settings),
            settings.kafka.topics.all(),
            partitions=3,
            replication_factor=3,
            config={"min.insync.replicas": "2"},
        )
        apply_repo(settings)
        register_small_model(settings)
        yield settings
    finally:
        spark.down()
        redis.down()
        kafka.down()


def register_small_model(settings: Settings) -> None:
    """A small real XGBoost model over the domain's features, in production: the job then scores every event."""
    register_synthetic_model(settings, promote=True)


class Run:
    """One spark-submit of the stream job onto the standalone cluster, draining the topic (availableNow)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.log = settings.stack.state_dir / f"{name}.log"
        self.batch_log = settings.stack.state_dir / "runs" / settings.stream.query_name / "batches.jsonl"
        self.lines_before = len(self.batch_log.read_text().splitlines()) if self.batch_log.exists() else 0
        env = {
            **os.environ,
            **cluster_environment(settings),
            "FEATURESTREAM_STREAM__MAX_OFFSETS_PER_TRIGGER": "400",
        }
        master = SparkStandalone(settings).master_url
        self.process = subprocess.Popen(
            spark_submit_argv(settings, "stream", ["--available-now"], master=master),
            env=env,
            start_new_session=True,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def batches(self) -> list[dict[str, Any]]:
        if not self.batch_log.exists():
            return []
        return [json.loads(line) for line in self.batch_log.read_text().splitlines()[self.lines_before :]]

    def wait_for_batches(self, count: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.batches()) < count:
            assert self.process.poll() is None, f"the job ended early:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {count} batches in time:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)

    def finish(self, timeout_s: float = 600) -> list[dict[str, Any]]:
        code = self.process.wait(timeout_s)
        assert code == 0, self.log.read_text()[-5000:]
        return self.batches()

    def stop(self) -> None:
        """Kill the job's process group (spark-submit's driver JVM and its Python), if it still runs: a job left
        behind by a failed test would hold the cluster's executors and starve the next test's job."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def dump_threads(self) -> Path:
        """The driver JVM's thread dump, next to the job's log, and every Python worker's stacks, in the executors'
        logs (best effort): where a stalled job was waiting."""
        for worker in psutil.process_iter(["cmdline"]):
            # The module as an argument of its own (`python -m ...`): the JVMs name it inside a setting, and the
            # signal would kill them.
            if "pipelines.spark.worker_daemon" in (worker.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    worker.send_signal(STACK_DUMP_SIGNAL)
        dump = self.log.with_suffix(".threads.txt")
        try:
            driver = psutil.Process(self.process.pid)
            family = [driver, *driver.children(recursive=True)]
        except psutil.NoSuchProcess:
            return dump
        with dump.open("ab") as out:
            for process in family:
                with contextlib.suppress(psutil.Error, OSError, subprocess.SubprocessError):
                    if process.name() == "java":
                        subprocess.run(["jstack", str(process.pid)], stdout=out, stderr=subprocess.STDOUT, timeout=60)
        return dump


def produce(settings: Settings, seed: int, start: datetime) -> int:
    """Generated events (2% bad) after everything produced before; returns how many are valid."""
    options = GeneratorOptions(
        count=EVENTS,
        now_ms=int(datetime.now(UTC).timestamp() * 1000),
        seed=seed,
        cards=300,
        merchants=50,
        start_ms=int(start.timestamp() * 1000),
        duration_ms=20 * 60_000,
        bad_fraction=0.02,
    )
    summary = produce_transactions(settings, options, labels=False)
    assert summary.ok
    return summary.main.sent - sum(summary.bad_by_kind.values())


def score_ids(settings: Settings) -> list[str]:
    decoder = RecordDecoder("scores")
    return [decoder.decode(m.value())["event_id"] for m in read_topic(settings, settings.kafka.topics.scores)]


def check_online_is_each_cards_latest(settings: Settings) -> None:
    """No feature regressions: each card's online values (Redis, read through Feast) are its latest event's."""
    offline = pd.read_parquet(offline_view_path(settings, "card_features"))
    latest_time = offline.groupby("card_id")["event_time"].transform("max")
    latest = offline[offline["event_time"] == latest_time]
    unique = latest.groupby("card_id").filter(lambda rows: len(rows) == 1).set_index("card_id")  # ties ambiguous
    names = CARD_FEATURES.feature_names
    online = (
        feature_store(settings)
        .get_online_features(
            features=[f"card_features:{name}" for name in names], entity_rows=[{"card_id": c} for c in unique.index]
        )
        .to_df()
        .set_index("card_id")
    )
    for name in names:
        want = unique[name].astype(float).to_numpy()
        got = online.loc[unique.index, name].astype(float).to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True, err_msg=name)


def run_with_fault(stack: Settings, name: str, seed: int, fault: Callable[[Run], None]) -> Run:
    before = set(score_ids(stack))
    start = datetime.now(UTC) - timedelta(hours=2) + timedelta(minutes=25 * seed)
    valid = produce(stack, seed, start)
    run = Run(stack, name)
    try:
        fault(run)
        batches = run.finish()
    except BaseException:
        dump = run.dump_threads()
        print(f"job {name} failed or stalled: driver threads in {dump}, workers' in the executors' logs, log {run.log}")
        run.stop()
        raise
    assert sum(b["records_read"] for b in batches) == EVENTS  # a batch Spark replays is logged once more
    assert sum(b["valid"] + b["dead_lettered"] for b in batches) == sum(b["records_read"] for b in batches)
    new = [event for event in score_ids(stack) if event not in before]
    assert len(new) == valid and len(set(new)) == valid  # exactly one score per valid event
    check_online_is_each_cards_latest(stack)
    return run


def test_a_broker_killed_mid_run_and_restarted(stack: Settings) -> None:
    def kill_a_broker(run: Run) -> None:
        run.wait_for_batches(2)
        cluster = KafkaCluster(stack)
        victim = cluster.nodes[1]
        pid = victim.status().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        try:
            run.wait_for_batches(3)  # the job goes on with two brokers
            assert victim.status().running is False
        finally:
            victim.up()  # even when the job stalled: the next test needs all three brokers

    run_with_fault(stack, "broker-killed", 2, kill_a_broker)


def test_a_spark_worker_killed_mid_run_and_restarted(stack: Settings) -> None:
    def kill_a_worker(run: Run) -> None:
        run.wait_for_batches(2)
        spark = SparkStandalone(stack)
        pid = spark.worker_pid("worker-1")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # its executor loses its worker and exits too; tasks move to worker-2
        run.wait_for_batches(3)
        spark.start_worker("worker-1")

    run = run_with_fault(stack, "worker-killed", 3, kill_a_worker)
    log = run.log.read_text()
    assert re.search(r"Lost executor|executor \S+ (lost|removed)", log, re.IGNORECASE), "no executor was lost"
    # The job ran on the cluster: executors on both workers, each in its own work directory (as on two machines).
    for worker in ("worker-1", "worker-2"):
        assert list((stack.stack.state_dir / "spark" / worker / "work").glob("app-*/*/stderr")), worker
    assert sum(worker.state == "ALIVE" for worker in SparkStandalone(stack).workers()) == 2  # worker-1 is back
