"""Latency from event production to score visibility, at a steady rate (a script, not a test).

    .venv/bin/python benchmarks/score_latency.py [--rate 5000] [--seconds 90] [--warmup 20] [--warm-events 2000]
                                                 [--trigger "500 milliseconds"] [--read-tasks N]
                                                 [--shuffle-partitions N] [--state-buckets N] [--json out.json]
                                                 [--trace DIR]

Starts a private broker, registers and promotes an XGBoost model of the configured size (random data over the
real feature names), starts the streaming job continuously (processing-time trigger), and produces live
traffic at ``--rate`` events/s: event times are stamped from the wall clock at that rate and the producer is
paced to match. A read_committed consumer on the scores topic records when each score becomes visible; a
score's latency is that moment minus its event's event time (the producer sends each 0.1 s chunk when its
first event is due, so an event may leave up to 0.1 s before its stamp: the figures are slightly low by at
most that). Scores of events in the first ``--warmup`` seconds are left out of the percentiles and counted
separately.

A streaming job runs for days, so its start-up is not its latency: before the timed traffic, ``--warm-events``
events are produced and the script waits for their scores (Python workers started, GX and the model loaded,
state store open); set it to 0 to include the cold start. ``--read-tasks`` and ``--shuffle-partitions``
override ``stream.read_tasks`` and ``spark.shuffle_partitions``: fewer tasks cost less per batch, which is
what small, frequent batches pay. ``--state-buckets`` overrides ``stream.state_buckets``.

While the traffic runs (warm-up included), a :class:`~pipelines.testing.process_cpu.CpuMeter` samples the CPU
time of each component (Spark's JVM, the Python workers, the broker, this script's driver, and the child process
that produces the traffic and watches the scores): ``cpu_cores_during_traffic`` gives the cores each kept busy
on average. A total well under the machine's cores means the batches wait rather than compute.

The machine's speed varies from day to day, so before the stream starts the script times bare XGBoost
``inplace_predict`` of the same model on 10,000 random rows, one thread (``machine_speed`` in the report, events
per core-second; the throughput benchmark reports the same figure): compare latencies of different days only
together with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer

from pipelines.feast_io.store import apply_repo
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.client_config import consumer_config
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.models.registry import ModelRegistry, ModelVersion
from pipelines.produce.transactions import produce_transactions
from pipelines.scoring.scorer import PREDICT_THREADS
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.session import get_or_create_session
from pipelines.stack.kafka_broker import KafkaBroker
from pipelines.stack.processes import free_port
from pipelines.stack.redis_server import RedisServer
from pipelines.streaming.job import start_feature_stream
from pipelines.testing import embedded_broker
from pipelines.testing.benchmark_report import emit_report, machine_description
from pipelines.testing.machine_speed import bare_predict_rate, predict_matrix
from pipelines.testing.models import register_synthetic_model
from pipelines.testing.process_cpu import PYTHON_WORKERS, CpuMeter, average_cores


class ScoreWatcher(threading.Thread):
    """Consumes the scores topic (read_committed) and records (event time, visible at) per score."""

    def __init__(self, settings: Any) -> None:
        super().__init__(daemon=True)
        config = consumer_config(settings, group_id=f"latency-{time.time_ns()}")
        config.update(
            {"auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.auto.commit": False}
        )
        self.consumer = Consumer(config)
        self.consumer.subscribe([settings.kafka.topics.scores])
        self.decoder = RecordDecoder("scores")
        self.seen: list[tuple[int, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.consumer.consume(num_messages=5000, timeout=0.05):
                if message.error():
                    continue
                visible = time.time() * 1000
                self.seen.append((int(self.decoder.decode(message.value())["event_time"]), visible))
        self.consumer.close()


def warm_up(settings: Any, watcher: ScoreWatcher, events: int, rate: float) -> float | None:
    """Produce ``events`` and wait (up to 5 minutes) until all are scored; seconds it took, None if skipped."""
    if events <= 0:
        return None
    clock = time.perf_counter()
    options = GeneratorOptions(count=events, now_ms=int(time.time() * 1000), seed=4, cards=20_000, rate=rate)
    produce_transactions(settings, options, labels=False)
    deadline = time.monotonic() + 300
    while len(watcher.seen) < events and time.monotonic() < deadline:
        time.sleep(0.2)
    return round(time.perf_counter() - clock, 1)


@dataclass(frozen=True)
class TrafficResult:
    seen: list[tuple[int, float]]
    warm_seconds: float | None
    started_ms: float
    load_before: tuple[float, float, float]
    produced: int
    produce_elapsed_s: float
    cpu_seconds: float
    """CPU time of the traffic process itself (producing, watching scores), all its threads."""


def run_traffic(settings: Any, warm_events: int, rate: float, seconds: float) -> TrafficResult:
    """In a child process: warm the job up, then produce the timed traffic and watch its scores arrive."""
    cpu_before = time.process_time()
    watcher = ScoreWatcher(settings)
    watcher.start()
    warm_seconds = warm_up(settings, watcher, warm_events, rate)
    load_before = os.getloadavg()
    started_ms = time.time() * 1000
    options = GeneratorOptions(count=int(rate * seconds), now_ms=int(started_ms), seed=5, cards=20_000, rate=rate)
    produced = produce_transactions(settings, options, labels=False)
    expected = produced.main.sent + warm_events
    deadline = time.monotonic() + 60
    while len(watcher.seen) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    watcher.stopping.set()
    watcher.join(10)
    return TrafficResult(
        watcher.seen,
        warm_seconds,
        started_ms,
        load_before,
        produced.main.sent,
        produced.elapsed_s,
        time.process_time() - cpu_before,
    )


def batch_profile(progress: Sequence[Any], history: list[Any], started_ms: float) -> dict[str, Any]:
    """Medians over the micro-batches that ran after the timed traffic started: rows, the trigger's time split
    (Spark's own bookkeeping vs the foreachBatch step), the state operator's commit time and size, and the
    foreachBatch step's driver time per stage (building the plan, then the job) and executor time per sink."""
    timed = [p for p in progress if datetime.fromisoformat(p["timestamp"]).timestamp() * 1000 >= started_ms]
    if not timed:
        return {}
    ids = {p["batchId"] for p in timed}
    records = [r for r in history if r.batch_id in ids]

    def median(values: list[float]) -> float:
        return round(float(np.median(values)), 3) if values else 0.0

    state = [p["stateOperators"][0] for p in timed if p.get("stateOperators")]
    sinks = sorted({name for r in records for name in r.sink_seconds})
    stages = sorted({name for r in records for name in r.stage_seconds})
    return {
        "count": len(timed),
        "median_input_rows": median([p["numInputRows"] for p in timed]),
        "median_trigger_s": median([p["durationMs"].get("triggerExecution", 0) / 1000 for p in timed]),
        "median_add_batch_s": median([p["durationMs"].get("addBatch", 0) / 1000 for p in timed]),
        "median_trigger_parts_s": {
            part: median([p["durationMs"].get(part, 0) / 1000 for p in timed])
            for part in sorted({part for p in timed for part in p["durationMs"]} - {"triggerExecution"})
        },
        "median_state_commit_s": median([s.get("commitTimeMs", 0) / 1000 for s in state]),
        "median_state_rows": median([s.get("numRowsTotal", 0) for s in state]),
        "median_state_memory_mb": median([s.get("memoryUsedBytes", 0) / 2**20 for s in state]),
        "median_driver_stage_s": {n: median([r.stage_seconds.get(n, 0.0) for r in records]) for n in stages},
        "median_executor_s_per_sink": {n: median([r.sink_seconds.get(n, 0.0) for r in records]) for n in sinks},
        "first_and_last": state_growth(timed[0], timed[-1]),
        "by_third": batches_by_third(timed),
        "add_batch_fit": add_batch_fit(timed),
    }


def batches_by_third(timed: Sequence[dict[str, Any]]) -> list[dict[str, float]] | None:
    """Medians over the first, middle and last third of the timed batches: what grows as the state does.

    ``state_update_task_s`` is Spark's ``allUpdatesTimeMs`` of the stateful operator, summed over its tasks: the
    feature function in the Python workers plus moving each bucket's value between the state store and Python.
    Set against ``add_batch_s`` it says how much of a batch's growth is the state's (a 300 s run on 2026-12-07:
    0.43 / 0.74 / 1.09 s by third, foreachBatch 0.80 / 0.97 / 1.21 s, rows 4,500 / 5,000 / 6,500).
    """
    if len(timed) < 3:
        return None

    def median(values: list[float]) -> float:
        return round(float(np.median(values)), 3)

    def state_update_s(progress: dict[str, Any]) -> float:
        operators = progress.get("stateOperators") or [{}]
        return float(operators[0].get("allUpdatesTimeMs", 0)) / 1000

    thirds = [[timed[i] for i in indices] for indices in np.array_split(np.arange(len(timed)), 3)]
    return [
        {
            "input_rows": median([p["numInputRows"] for p in part]),
            "trigger_s": median([p["durationMs"].get("triggerExecution", 0) / 1000 for p in part]),
            "add_batch_s": median([p["durationMs"].get("addBatch", 0) / 1000 for p in part]),
            "state_update_task_s": median([state_update_s(p) for p in part]),
        }
        for part in thirds
    ]


def add_batch_fit(timed: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Least squares: addBatch seconds = fixed + per_row x the batch's rows + per_held x events already held.

    Events held are the input rows of the earlier timed batches (within the 24 h window, none is forgotten
    during a run); the warm-up events are left out, a constant absorbed by ``fixed``. ``per_held_event_us`` is
    what each event in the state costs every later batch: the figure that says whether the state design scales.
    """
    if len(timed) < 4:
        return None
    rows = np.array([p["numInputRows"] for p in timed], dtype=np.float64)
    held = np.concatenate([[0.0], np.cumsum(rows)[:-1]])
    seconds = np.array([p["durationMs"].get("addBatch", 0) / 1000 for p in timed])
    design = np.column_stack([np.ones_like(rows), rows, held])
    (fixed, per_row, per_held), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    residual = seconds - design @ np.array([fixed, per_row, per_held])
    return {
        "fixed_s": round(float(fixed), 3),
        "per_row_us": round(float(per_row) * 1e6, 2),
        "per_held_event_us": round(float(per_held) * 1e6, 3),
        "residual_rms_s": round(float(np.sqrt(np.mean(residual**2))), 3),
        "held_events_at_end": int(held[-1] + rows[-1]),
    }


def state_growth(first: dict[str, Any], last: dict[str, Any]) -> dict[str, list[float]]:
    """The first and the last timed batch side by side: whether a batch costs more as the state grows.

    Each state bucket holds its entities' whole window of history and is rewritten whenever one of them has an
    event, so a batch's cost follows the state's size, not only its own row count.
    """

    def state_mb(progress: dict[str, Any]) -> float:
        operators = progress.get("stateOperators") or [{}]
        return round(operators[0].get("memoryUsedBytes", 0) / 2**20, 1)

    return {
        "input_rows": [first["numInputRows"], last["numInputRows"]],
        "add_batch_s": [first["durationMs"].get("addBatch", 0) / 1000, last["durationMs"].get("addBatch", 0) / 1000],
        "state_memory_mb": [state_mb(first), state_mb(last)],
    }


def latency_by_third(steady: np.ndarray) -> list[dict[str, float]] | None:
    """p50 / p99 of the events produced in each third of the timed traffic, by event time.

    A job whose batches cost more as its state grows shows it here: the last third's tail is longer than the
    first's even at the same rate.
    """
    if len(steady) < 3:
        return None
    order = np.argsort(steady[:, 0], kind="stable")
    thirds = np.array_split(steady[order], 3)
    return [
        {
            "p50": round(float(np.percentile((part[:, 1] - part[:, 0]) / 1000, 50)), 3),
            "p99": round(float(np.percentile((part[:, 1] - part[:, 0]) / 1000, 99)), 3),
        }
        for part in thirds
    ]


TRAFFIC = "traffic_and_score_watcher"


def traffic_cpu_apart(cpu_seconds: dict[str, float], traffic_seconds: float) -> dict[str, float]:
    """The meter counts the traffic process (a Python child of this script) among the Python workers: its own CPU
    time moves to a line of its own."""
    apart = dict(cpu_seconds)
    apart[PYTHON_WORKERS] = round(apart.get(PYTHON_WORKERS, 0.0) - traffic_seconds, 1)
    apart[TRAFFIC] = round(traffic_seconds, 1)
    return apart


def write_trace(
    directory: Path,
    progress: Sequence[Any],
    history: Sequence[Any],
    seen: Sequence[Any],
    timed_from_ms: float,
) -> None:
    """The run's raw material, for questions the report's medians cannot answer (which batches the slowest
    scores waited on; ``benchmarks/latency_tail.py`` reads it): ``progress.jsonl`` (Spark's report per
    micro-batch), ``batches.jsonl`` (the job's :class:`~pipelines.streaming.batch_writer.BatchRecord` per
    micro-batch), ``latencies.npy`` (event time and visible-at per score, epoch ms, in the order seen) and
    ``run.json`` (``timed_from_ms``: event times from then on are in the percentiles)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps({"timed_from_ms": timed_from_ms}), encoding="utf-8")
    (directory / "progress.jsonl").write_text("".join(p.json + "\n" for p in progress), encoding="utf-8")
    (directory / "batches.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in history), encoding="utf-8")
    np.save(directory / "latencies.npy", np.array(seen, dtype=np.float64).reshape(-1, 2))


RECENT_PROGRESS_KEPT = 100_000
"""Progress reports the query keeps (one per micro-batch): every batch of any run this script makes."""

SPEED_ROWS = 10_000
SPEED_REPEATS = 30


def machine_speed_now(settings: Any, model: ModelVersion) -> dict[str, int]:
    """Bare ``inplace_predict`` of the benchmark's model, one thread, on a fixed matrix, before the stream starts
    (only the broker runs): the reference that makes latency figures of different days comparable."""
    booster = ModelRegistry.from_settings(settings).load_booster(model)
    matrix = predict_matrix(SPEED_ROWS, len(model.feature_names))
    rate = bare_predict_rate(booster, matrix, repeats=SPEED_REPEATS, threads=PREDICT_THREADS)
    return {"bare_inplace_predict_events_per_core_s": round(rate), "rows": SPEED_ROWS, "repeats": SPEED_REPEATS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5_000)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--warm-events", type=int, default=2_000, help="scored before the timed traffic starts")
    parser.add_argument("--trigger", default="500 milliseconds", help="the stream's processing-time trigger")
    parser.add_argument("--read-tasks", type=int, help="stream.read_tasks (Kafka read tasks per batch)")
    parser.add_argument("--shuffle-partitions", type=int, help="spark.shuffle_partitions (state and scoring tasks)")
    parser.add_argument("--state-buckets", type=int, help="stream.state_buckets (state groups per entity type)")
    parser.add_argument(
        "--online-store",
        choices=["sqlite", "redis"],
        default="sqlite",
        help="feast.online_store; redis starts a private redis-server (its tasks write in parallel; SQLite's take "
        "turns on one write lock)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--trace",
        type=Path,
        help="a directory to write every micro-batch's progress and batch record (JSON lines) and every score's "
        "(event time, visible at) in ms (latencies.npy) to, for finding which batches make the tail",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as resources:
        tmp = resources.enter_context(tempfile.TemporaryDirectory(prefix="fs-bench-latency-"))
        base = resources.enter_context(embedded_broker(Path(tmp)))
        if args.online_store == "redis":
            base = base.model_copy(
                update={
                    "feast": base.feast.model_copy(update={"online_store": "redis"}),
                    "stack": base.stack.model_copy(update={"redis_port": free_port()}),
                }
            )
            redis_server = RedisServer(base)
            redis_server.up()
            resources.callback(redis_server.down)
        stream: dict[str, Any] = {"trigger_interval": args.trigger}
        # Spark keeps the last 100 progress reports by default: a long run's profile and fit would see its end only.
        recent = {"spark.sql.streaming.numRecentProgressUpdates": str(RECENT_PROGRESS_KEPT)}
        spark_update: dict[str, Any] = {"master": "local[2]", "extra_conf": {**base.spark.extra_conf, **recent}}
        if args.read_tasks:
            stream["read_tasks"] = args.read_tasks
        if args.shuffle_partitions:
            spark_update["shuffle_partitions"] = args.shuffle_partitions
        if args.state_buckets:
            stream["state_buckets"] = args.state_buckets
        settings = base.model_copy(
            update={
                "stream": base.stream.model_copy(update=stream),
                "spark": base.spark.model_copy(update=spark_update),
            }
        )
        ensure_topics(admin_client(settings), settings.kafka.topics.all(), partitions=3, replication_factor=1)
        apply_repo(settings)
        models = settings.models
        registered = register_synthetic_model(settings, rounds=models.num_boost_round, max_depth=models.max_depth)
        version = registered.version
        machine_speed = machine_speed_now(settings, registered)
        spark = get_or_create_session(settings)
        running = start_feature_stream(spark, settings)
        # The traffic and the score watcher run in their own process: in the driver's, their Python (generating,
        # encoding, decoding every score) held the interpreter lock the foreachBatch step needs between batches.
        with multiprocessing.get_context("spawn").Pool(1) as traffic:
            meter = CpuMeter(broker_pid=KafkaBroker(settings).status().pid)
            meter.start()
            traffic_started = time.perf_counter()
            result = traffic.apply(run_traffic, (settings, args.warm_events, args.rate, args.seconds))
            cpu = traffic_cpu_apart(meter.stop(), result.cpu_seconds)
            traffic_wall_s = time.perf_counter() - traffic_started
        warm_seconds, started_ms, load_before = result.warm_seconds, result.started_ms, result.load_before
        timed_from_ms = started_ms + args.warmup * 1000  # scores of events from then on are in the percentiles
        produced_sent, produce_elapsed_s = result.produced, result.produce_elapsed_s
        progress = running.query.lastProgress
        reports = running.query.recentProgress
        batches = batch_profile(reports, running.writer.history, started_ms)
        if args.trace is not None:
            write_trace(args.trace, reports, running.writer.history, result.seen, timed_from_ms)
        running.query.stop()
        running.close()
        spark.stop()

    seen = np.array(result.seen, dtype=np.float64).reshape(-1, 2)
    steady = seen[seen[:, 0] >= timed_from_ms]
    latency_s = (steady[:, 1] - steady[:, 0]) / 1000
    report = {
        "rate_events_per_s": args.rate,
        "seconds": args.seconds,
        "trigger": args.trigger,
        "read_tasks": settings.stream.read_tasks or "1 per core",
        "shuffle_partitions": settings.spark.shuffle_partitions,
        "state_buckets": settings.stream.state_buckets,
        "online_store": settings.feast.online_store,
        "warm_events": args.warm_events,
        "warm_up_seconds": warm_seconds,
        "model_version": version,
        "produced": produced_sent,
        "produce_elapsed_s": round(produce_elapsed_s, 1),
        "scores_seen": len(seen) - args.warm_events,
        "scores_in_percentiles": len(steady),
        "warmup_scores_excluded": len(seen) - len(steady),
        "latency_s": {f"p{q}": round(float(np.percentile(latency_s, q)), 3) for q in (50, 95, 99)}
        | {"max": round(float(latency_s.max()), 3)}
        if len(latency_s)
        else None,
        "latency_by_third_s": latency_by_third(steady),
        "last_batch_input_rows": progress["numInputRows"] if progress else None,
        "timed_batches": batches,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_cores_during_traffic": average_cores(cpu, traffic_wall_s) | {"cores": os.cpu_count()},
        "machine_speed": machine_speed,
        "machine": machine_description(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
