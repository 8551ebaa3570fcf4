"""Throughput of the streaming job on a Spark standalone cluster (2 workers) against local mode (a script, not a test).

    .venv/bin/python benchmarks/cluster_throughput.py [--events 200000] [--batch 50000] [--brokers 1|3]
                                                      [--workers 2] [--worker-cores 1] [--score] [--json out.json]

Starts a private stack (a temporary state dir, free ports): ``--brokers`` KRaft nodes (RF 3 / min ISR 2 with 3),
redis-server (the online store of both runs, so the only difference is where Spark runs), and a standalone master
with ``--workers`` workers of ``--worker-cores`` cores each. Generated traffic is produced once (not timed); then
the real job (`featurestream submit stream --available-now`, ``maxOffsetsPerTrigger=--batch``) drains it twice
from the start, each run with its own checkpoint, Feast state and output topics: once with ``--master
local[N]`` (N = workers x cores) and once with ``--master spark://...``.

Per run: events/s over the whole run (spark-submit start-up included) and over the warm batches, and the CPU time
the job's processes used (driver JVM and Python, executors and their Python workers; sampled every half second
from the process trees, so a process that ends loses at most its last half second), as CPU microseconds per event
and events per CPU-second: what one core sustains, the figure to plan a cluster's size with. The brokers' and
Redis' CPU is reported apart. The machine is shared (load average reported): compare runs made together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
from stream_throughput import generator_options, register_benchmark_model  # benchmarks/ is on sys.path

from pipelines.config import Settings
from pipelines.feast_io.store import apply_repo
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.produce.transactions import produce_transactions
from pipelines.spark.submit import spark_submit_argv
from pipelines.stack.kafka_cluster import embedded_kafka
from pipelines.stack.redis_server import RedisServer
from pipelines.stack.spark_standalone import SparkStandalone
from pipelines.testing.benchmark_report import emit_report, machine_description
from pipelines.testing.cluster import cluster_environment, cluster_settings


class CpuSampler:
    """Cumulative CPU seconds of process trees, polled in a thread; each pid's last reading counts."""

    def __init__(self, roots: dict[str, Iterable[int]]) -> None:
        self.roots = {name: list(pids) for name, pids in roots.items()}
        self.seen: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.baseline: dict[str, dict[int, float]] = {name: {} for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self, into: dict[str, dict[int, float]] | None = None) -> None:
        target = into if into is not None else self.seen
        for name, pids in self.roots.items():
            for pid in pids:
                for process in self._tree(pid):
                    try:
                        times = process.cpu_times()
                    except psutil.NoSuchProcess:
                        continue
                    # Own time only: a reaped child's time also lands in its parent's children_* fields.
                    target[name][process.pid] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample(self.baseline)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def seconds(self, name: str) -> float:
        return sum(cpu - self.baseline[name].get(pid, 0.0) for pid, cpu in self.seen[name].items())


def run_job(
    settings: Settings, master: str, name: str, long_lived: dict[str, list[int]], *, score: bool
) -> dict[str, Any]:
    """spark-submit the job on ``master`` with its own state (checkpoint, Feast, registry, output topics)."""
    state = settings.stack.state_dir / name
    run_settings = settings.model_copy(
        update={
            "stack": settings.stack.model_copy(update={"state_dir": state}),
            "stream": settings.stream.model_copy(update={"query_name": name}),
            "kafka": settings.kafka.model_copy(
                update={
                    "topics": settings.kafka.topics.model_copy(
                        update={
                            "scores": f"scores-{name}",
                            "dead_letter": f"dlq-{name}",
                            "shadow_scores": f"shadow-{name}",
                        }
                    )
                }
            ),
        }
    )
    apply_repo(run_settings)
    if score:
        register_benchmark_model(run_settings)
    env = {**os.environ, **cluster_environment(run_settings)}
    log = state / "job.log"
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("wb") as out:
        job = subprocess.Popen(
            spark_submit_argv(run_settings, "stream", ["--available-now"], master=master),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        with CpuSampler({"job": [job.pid], **long_lived}) as cpu:
            code = job.wait()
    wall = time.perf_counter() - started
    if code != 0:
        errors = [line for line in log.read_text().splitlines() if "Error" in line or "Exception" in line]
        raise SystemExit(f"{name}: the job failed ({code}):\n" + "\n".join(errors[:40]))
    batches = [json.loads(line) for line in (state / "runs" / name / "batches.jsonl").read_text().splitlines()]
    read = sum(batch["records_read"] for batch in batches)
    warm = batches[1:] if len(batches) > 1 else batches
    warm_seconds = sum(batch["seconds"] for batch in warm)
    job_cpu = cpu.seconds("job") + cpu.seconds("executors")
    return {
        "master": master,
        "batches": len(batches),
        "records_read": read,
        "conserved": all(b["records_read"] == b["valid"] + b["dead_lettered"] for b in batches),
        "scored": sum(batch.get("scored", 0) for batch in batches),
        "wall_seconds_incl_startup": round(wall, 1),
        "events_per_s_wall": round(read / wall),
        "events_per_s_warm_batches": round(sum(b["records_read"] for b in warm) / warm_seconds)
        if warm_seconds
        else None,
        "job_cpu_seconds": round(job_cpu, 1),
        "job_cpu_us_per_event": round(1e6 * job_cpu / read, 1),
        "events_per_job_cpu_second": round(read / job_cpu),
        "spark_master_cpu_seconds": round(cpu.seconds("spark_master"), 1),
        "brokers_cpu_seconds": round(cpu.seconds("brokers"), 1),
        "redis_cpu_seconds": round(cpu.seconds("redis"), 1),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000, help="maxOffsetsPerTrigger")
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-cores", type=int, default=1)
    parser.add_argument("--score", action="store_true", help="score every event with a registered model")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fs-bench-cluster-") as tmp:
        base = cluster_settings(
            Path(tmp),
            brokers=args.brokers,
            spark_workers=args.workers,
            stack={"spark_worker_cores": args.worker_cores, "spark_worker_memory": "3g"},
            feast={"online_store": "redis"},
        )
        settings = base.model_copy(
            update={"stream": base.stream.model_copy(update={"max_offsets_per_trigger": args.batch})}
        )
        kafka, redis, spark = embedded_kafka(settings), RedisServer(settings), SparkStandalone(settings)
        try:
            kafka.up()
            redis.up()
            spark.up()
            ensure_topics(
                admin_client(settings),
                [settings.kafka.topics.transactions],
                partitions=6,
                replication_factor=settings.kafka.replication_factor,
            )
            produced = produce_transactions(settings, generator_options(args.events, args.cards), labels=False)
            print(f"produced {produced.main.sent:,} events", flush=True)
            long_lived = {
                "executors": [pid for name in spark.worker_names() if (pid := spark.worker_pid(name))],
                "spark_master": [pid] if (pid := spark.master_pid()) else [],
                "brokers": [p for p in _broker_pids(kafka)],
                "redis": [pid] if (pid := redis.status().pid) else [],
            }
            cores = args.workers * args.worker_cores
            report: dict[str, Any] = {}
            for name, master in ((f"local{cores}", f"local[{cores}]"), ("standalone", spark.master_url)):
                print(f"running on {master} ...", flush=True)
                report[name] = run_job(settings, master, name, long_lived, score=args.score)
                print(json.dumps(report[name]), flush=True)
        finally:
            spark.down()
            redis.down()
            kafka.down()
    report["setup"] = {
        "events": args.events,
        "max_offsets_per_trigger": args.batch,
        "brokers": args.brokers,
        "workers": f"{args.workers} x {args.worker_cores} core(s), executors 1g",
        "topic_partitions": 6,
        "online_store": "redis",
        "scored": args.score,
        "machine": machine_description(),
        "note": "executors' CPU includes the worker JVMs (their parents); the workers idle otherwise",
    }
    emit_report(report, args.json)


def _broker_pids(kafka: Any) -> list[int]:
    nodes = getattr(kafka, "nodes", [kafka])
    return [pid for node in nodes if (pid := node.status().pid)]


if __name__ == "__main__":
    main()
