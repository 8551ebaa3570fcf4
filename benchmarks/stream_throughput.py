"""Throughput of the streaming feature job, broker included, Spark local[2] (a script, not a test).

    .venv/bin/python benchmarks/stream_throughput.py [--events 400000] [--batch 100000]

Starts a private broker (a temporary state dir, free ports), produces generated traffic first (not timed),
then runs the real job (`start_feature_stream`, trigger availableNow, ``maxOffsetsPerTrigger=--batch``) and
reports: events/s over all batches and over the batches after the first (Python workers warm), each stage's
share of the batch time (from the job's own batch log), and the driver's memory (JVM and Python RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from pipelines.feast_io.store import apply_repo
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.produce.transactions import produce_transactions
from pipelines.spark.session import get_or_create_session
from pipelines.streaming.batch_writer import BatchRecord
from pipelines.streaming.job import start_feature_stream
from pipelines.testing import embedded_broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=100_000, help="maxOffsetsPerTrigger")
    parser.add_argument("--cards", type=int, default=20_000)
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
        now = datetime.now(UTC)
        options = GeneratorOptions(
            count=args.events,
            now_ms=int(now.timestamp() * 1000),
            seed=1,
            cards=args.cards,
            merchants=args.cards // 10,
            start_ms=int((now - timedelta(days=3)).timestamp() * 1000),
            duration_ms=int(timedelta(days=3).total_seconds() * 1000),
            bad_fraction=0.01,
        )
        produced = produce_transactions(settings, options, labels=False)
        print(f"produced {produced.main.sent:,} events ({produced.main.bytes / produced.main.sent:.0f} B/event)")

        spark = get_or_create_session(settings)
        started = time.perf_counter()
        running = start_feature_stream(spark, settings, available_now=True)
        running.query.awaitTermination()
        wall = time.perf_counter() - started
        history = running.writer.history
        driver = psutil.Process(os.getpid())
        jvm_rss = sum(child.memory_info().rss for child in driver.children(recursive=True) if "java" in child.name())
        report = summarise(history, wall)
        report.update(
            {
                "events": args.events,
                "max_offsets_per_trigger": args.batch,
                "driver_python_rss_mb": round(driver.memory_info().rss / 2**20),
                "driver_jvm_rss_mb": round(jvm_rss / 2**20),
                "machine": f"{platform.node()}, {psutil.cpu_count()} cores, "
                f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            }
        )
        spark.stop()
    print(json.dumps(report, indent=2))


def summarise(history: list[BatchRecord], wall: float) -> dict[str, object]:
    read = sum(batch.records_read for batch in history)
    batch_seconds = sum(batch.seconds for batch in history)
    warm = history[1:] if len(history) > 1 else history
    stages: dict[str, float] = {}
    for batch in warm:
        for stage, seconds in batch.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    warm_seconds = sum(batch.seconds for batch in warm)
    return {
        "batches": len(history),
        "records_read": read,
        "conserved": all(b.records_read == b.valid + b.dead_lettered for b in history),
        "wall_seconds_incl_startup": round(wall, 1),
        "events_per_s_wall": round(read / wall),
        "events_per_s_in_batches": round(read / batch_seconds) if batch_seconds else None,
        "events_per_s_warm_batches": round(sum(b.records_read for b in warm) / warm_seconds) if warm_seconds else None,
        "stage_share_warm": {stage: f"{100 * seconds / warm_seconds:.0f}%" for stage, seconds in stages.items()},
    }


if __name__ == "__main__":
    main()
