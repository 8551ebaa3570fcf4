"""Throughput of the streaming feature job, broker included, Spark local[2] (a script, not a test).

    .venv/bin/python benchmarks/stream_throughput.py [--events 1600000] [--batch 400000] [--score]
                                                      [--stage-breakdown] [--json out.json]

Starts a private broker (a temporary state dir, free ports), produces generated traffic first (not timed),
then runs the real job (`start_feature_stream`, trigger availableNow, ``maxOffsetsPerTrigger=--batch``) and
reports events/s over all batches, over the batches after the first (Python workers warm) and over the warm
full batches (the input's last few records usually make a tiny batch of their own: a steady stream's rate is
the full batches'), each batch's records and seconds, the driver's memory (JVM and Python RSS) and the
executors' time per sink, and the CPU seconds each component (broker, Spark's JVM, Python workers, the driver's
Python) spent while the job ran (Spark's query start included), also per event.

``--score`` registers and promotes an XGBoost model first (trained on random data over the real feature names:
its quality is irrelevant here, its size is the configured one), so every valid event is also scored and
published exactly once.

``--stage-breakdown`` then runs the same query cut short after each stage, writing to Spark's ``noop`` sink
(read only; + decode and validate; + entity state), on a fresh checkpoint each time; each stage's share is
its marginal cost (the difference between consecutive cuts), and "writes" is the full job minus the entity
state cut. Marginal costs on a shared 2-core machine are approximate: the stages overlap in time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.feast_io.store import apply_repo
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.produce.transactions import produce_transactions
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.session import get_or_create_session
from pipelines.stack.kafka_broker import KafkaBroker
from pipelines.streaming.batch_writer import BatchRecord
from pipelines.streaming.decode_validate import decode_and_validate, kafka_rows
from pipelines.streaming.entity_state import compute_entity_features, explode_entities
from pipelines.streaming.job import read_transactions, start_feature_stream
from pipelines.testing import embedded_broker
from pipelines.testing.benchmark_report import emit_report, machine_description
from pipelines.testing.machine_speed import bare_predict_rate, predict_matrix
from pipelines.testing.models import register_synthetic_model
from pipelines.testing.process_cpu import CpuMeter
from pipelines.validation.suite import read_suite_json

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_600_000)
    parser.add_argument("--batch", type=int, default=400_000, help="maxOffsetsPerTrigger (the job's default)")
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--score", action="store_true", help="score every event with a registered model")
    parser.add_argument("--stage-breakdown", action="store_true", help="also time the query cut after each stage")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fs-bench-stream-") as tmp, embedded_broker(Path(tmp)) as base:
        settings = base.model_copy(
            update={
                "stream": base.stream.model_copy(update={"max_offsets_per_trigger": args.batch}),
                "spark": base.spark.model_copy(update={"master": "local[2]"}),
            }
        )
        ensure_topics(admin_client(settings), settings.kafka.topics.all(), partitions=3, replication_factor=1)
        apply_repo(settings)
        if args.score:
            version = register_benchmark_model(settings)
            print(f"scoring with model version {version}")
        produced = produce_transactions(settings, generator_options(args.events, args.cards), labels=False)
        print(f"produced {produced.main.sent:,} events ({produced.main.bytes / produced.main.sent:.0f} B/event)")

        spark = get_or_create_session(settings)
        load_before = os.getloadavg()
        meter = CpuMeter(broker_pid=KafkaBroker(settings).status().pid)
        meter.start()
        started = time.perf_counter()
        running = start_feature_stream(spark, settings, available_now=True)
        running.query.awaitTermination()
        wall = time.perf_counter() - started
        cpu = meter.stop()
        running.close()
        history = running.writer.history
        driver = psutil.Process(os.getpid())
        jvm_rss = sum(child.memory_info().rss for child in driver.children(recursive=True) if "java" in child.name())
        report = summarise(history, wall, args.batch)
        report["cpu_seconds_during_job"] = cpu
        report["cpu_us_per_event"] = {name: round(1e6 * seconds / args.events, 1) for name, seconds in cpu.items()}
        if args.score:
            report["scoring"] = scoring_against_bare_predict(settings, history)
        if args.stage_breakdown:
            report["stage_breakdown"] = stage_breakdown(spark, settings, Path(tmp), report)
        report.update(
            {
                "events": args.events,
                "max_offsets_per_trigger": args.batch,
                "state_buckets": settings.stream.state_buckets,
                "scored": args.score,
                "driver_python_rss_mb": round(driver.memory_info().rss / 2**20),
                "driver_jvm_rss_mb": round(jvm_rss / 2**20),
                "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                "machine": machine_description(),
            }
        )
        spark.stop()
    emit_report(report, args.json)


def generator_options(events: int, cards: int) -> GeneratorOptions:
    """Three days of traffic ending now, 1% bad records."""
    now = datetime.now(UTC)
    return GeneratorOptions(
        count=events,
        now_ms=int(now.timestamp() * 1000),
        seed=1,
        cards=cards,
        merchants=cards // 10,
        start_ms=int((now - timedelta(days=3)).timestamp() * 1000),
        duration_ms=int(timedelta(days=3).total_seconds() * 1000),
        bad_fraction=0.01,
    )


def register_benchmark_model(settings: Settings) -> int:
    """A real XGBoost model of the configured size over the domain's features, registered and promoted."""
    models = settings.models
    return register_synthetic_model(settings, rounds=models.num_boost_round, max_depth=models.max_depth).version


def scoring_against_bare_predict(settings: Settings, history: list[BatchRecord]) -> dict[str, Any]:
    """The pipeline's scoring against bare ``inplace_predict`` of the same model on matrices of the same size in
    this process, both with the scorer's one predict thread (Spark runs one task per core).

    Two comparisons, both per core: XGBoost's predict inside the pipeline per executor-second vs bare per
    core-second (the model's own work, same thread count); and the whole scoring pass (shuffle read, pairing an
    event's rows, predict, Avro, the Kafka transaction) per executor-second against the same bare rate."""
    from pipelines.models.registry import ModelRegistry
    from pipelines.scoring.scorer import PREDICT_THREADS

    warm = history[1:] if len(history) > 1 else history
    scored = sum(batch.scored for batch in warm)
    scoring_pass = sum(batch.sink_seconds.get("scoring_pass", 0.0) for batch in warm)
    predict = sum(batch.sink_seconds.get("predict", 0.0) for batch in warm)
    registry = ModelRegistry.from_settings(settings)
    production = registry.production()
    assert production is not None
    booster = registry.load_booster(production)
    partitions = settings.spark.shuffle_partitions
    rows = max(1, scored // max(1, len(warm) * partitions))  # rows per scoring task
    matrix = predict_matrix(rows, len(production.feature_names))
    bare_per_core = bare_predict_rate(booster, matrix, repeats=max(1, scored // rows), threads=PREDICT_THREADS)
    in_pipeline = scored / predict if predict else None
    pass_rate = scored / scoring_pass if scoring_pass else None
    return {
        "rows_per_scoring_task": rows,
        "predict_threads": PREDICT_THREADS,
        "bare_inplace_predict_events_per_core_s": round(bare_per_core),
        "pipeline_predict_events_per_executor_s": round(in_pipeline) if in_pipeline else None,
        "pipeline_predict_vs_bare": f"{100 * in_pipeline / bare_per_core:.0f}%" if in_pipeline else None,
        "scoring_pass_events_per_executor_s": round(pass_rate) if pass_rate else None,
        "scoring_pass_vs_bare": f"{100 * pass_rate / bare_per_core:.0f}%" if pass_rate else None,
    }


def summarise(history: list[BatchRecord], wall: float, batch_size: int) -> dict[str, Any]:
    """Rates over all batches, over the warm ones (after the first), and over the warm full ones: the input's
    last few records usually make a batch of their own (a handful of records paying a whole batch's fixed cost),
    which a steady stream does not have."""
    read = sum(batch.records_read for batch in history)
    batch_seconds = sum(batch.seconds for batch in history)
    warm = history[1:] if len(history) > 1 else history
    warm_seconds = sum(batch.seconds for batch in warm)
    full = [batch for batch in warm if batch.records_read >= 0.9 * batch_size]
    full_seconds = sum(batch.seconds for batch in full)
    driver_stages: dict[str, float] = {}
    sinks: dict[str, float] = {}
    for batch in warm:
        for stage, seconds in batch.stage_seconds.items():
            driver_stages[stage] = driver_stages.get(stage, 0.0) + seconds
        for sink, seconds in batch.sink_seconds.items():
            sinks[sink] = sinks.get(sink, 0.0) + seconds
    return {
        "batches": len(history),
        "records_and_seconds_per_batch": [[batch.records_read, round(batch.seconds, 2)] for batch in history],
        "records_read": read,
        "scores_published": sum(batch.scored for batch in history),
        "conserved": all(b.records_read == b.valid + b.dead_lettered for b in history),
        "wall_seconds_incl_startup": round(wall, 1),
        "events_per_s_wall": round(read / wall),
        "events_per_s_in_batches": round(read / batch_seconds) if batch_seconds else None,
        "events_per_s_warm_batches": round(sum(b.records_read for b in warm) / warm_seconds) if warm_seconds else None,
        "warm_seconds_per_batch": round(warm_seconds / len(warm), 2) if warm else None,
        "events_per_s_warm_full_batches": round(sum(b.records_read for b in full) / full_seconds)
        if full_seconds
        else None,
        "driver_stage_share_warm": {s: f"{100 * v / warm_seconds:.0f}%" for s, v in driver_stages.items()},
        "executor_sink_seconds_per_warm_batch": {s: round(v / len(warm), 3) for s, v in sinks.items()},
    }


def stage_breakdown(spark: SparkSession, settings: Settings, tmp: Path, full: dict[str, Any]) -> dict[str, Any]:
    """Seconds per warm batch of the query cut after each stage, and each stage's marginal share."""
    domain = get_domain(settings.stream.domain)
    stream = settings.stream

    def raw() -> DataFrame:
        return read_transactions(spark, settings, "earliest")

    def decoded() -> DataFrame:
        decoder = RecordDecoder.from_settings(domain.event_subject, settings)
        return decode_and_validate(raw(), domain, decoder, read_suite_json())

    def state() -> DataFrame:
        exploded = explode_entities(decoded(), domain, stream.watermark_delay, stream.state_buckets)
        return compute_entity_features(exploded, domain, timedelta(days=stream.idle_entity_days), stream.state_buckets)

    cuts: dict[str, Callable[[], DataFrame]] = {
        "read": lambda: kafka_rows(raw()),
        "decode_validate": decoded,
        "entity_state": state,
    }
    rates = {name: _noop_events_per_second(build(), tmp) for name, build in cuts.items()}
    rates["writes"] = full["events_per_s_warm_batches"]
    micros = {name: 1e6 / rate for name, rate in rates.items()}
    marginal, previous = {}, 0.0
    for name, cost in micros.items():
        marginal[name] = max(cost - previous, 0.0)
        previous = cost
    total = sum(marginal.values()) or 1.0
    return {
        "events_per_s_when_cut_after": {name: round(rate) for name, rate in rates.items()},
        "marginal_wall_us_per_event": {name: round(cost, 1) for name, cost in marginal.items()},
        "marginal_share": {name: f"{100 * cost / total:.0f}%" for name, cost in marginal.items()},
    }


def _noop_events_per_second(frame: DataFrame, tmp: Path) -> float:
    """Rows per second of the warm batches (all but the first) of ``frame`` written to the noop sink."""
    seconds: dict[int, float] = {}

    def sink(batch: DataFrame, batch_id: int) -> None:
        clock = time.perf_counter()
        batch.write.format("noop").mode("overwrite").save()
        seconds[batch_id] = time.perf_counter() - clock

    query = (
        frame.writeStream.foreachBatch(sink)
        .option("checkpointLocation", str(tmp / f"breakdown-{uuid.uuid4().hex}"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    rows = {progress["batchId"]: progress["numInputRows"] for progress in query.recentProgress}
    warm = [batch_id for batch_id in sorted(seconds) if batch_id > min(seconds)] or sorted(seconds)
    return sum(rows.get(b, 0) for b in warm) / sum(seconds[b] for b in warm)


if __name__ == "__main__":
    main()
