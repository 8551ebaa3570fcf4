"""Benchmark: producing generated transactions to a real local broker, from one Python process.

Run it with the project's Python (it starts its own private broker, on free ports in a temporary directory,
through the same code as `featurestream stack up`, and stops it at the end):

    .venv/bin/python benchmarks/produce_throughput.py                 # 1,000,000 events
    .venv/bin/python benchmarks/produce_throughput.py --count 300000

To measure against a broker that is already running (e.g. after `featurestream stack up`, or a cluster
configured through FEATURESTREAM_KAFKA__BOOTSTRAP_SERVERS) instead, add ``--use-settings``: it then creates
(and deletes) two uniquely named topics there.

What it reports, per stage: events/s by wall clock, this process's CPU seconds per million events (less
sensitive to other load on the machine), and bytes per event. The stages:

- generate: the generator alone (columns + the dicts the encoder takes);
- generate + encode: plus Avro single-object encoding, no Kafka;
- produce pre-encoded: only handing ready values to the producer and waiting for every acknowledgement;
- end to end: `featurestream produce transactions` as the CLI runs it (generate, encode, produce, flush),
  with and without labels.

The target (issue 3) is 100,000 events/s end to end on a 2-core machine. The broker runs on the same two
cores, so the figures also depend on whatever else the machine is doing: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipelines.config import Settings, load_settings
from pipelines.generator import GeneratorOptions, TransactionGenerator
from pipelines.generator.timing import DAY_MS, wall_clock_ms
from pipelines.kafka.producer import CountingProducer
from pipelines.kafka.topics import admin_client, delete_topics, ensure_topics
from pipelines.produce import produce_transactions
from pipelines.schemas.store import load_store
from pipelines.serde import SingleObjectEncoder
from pipelines.testing import embedded_broker, unique_topic

console = Console()


@dataclass(frozen=True)
class Stage:
    name: str
    events: int
    wall_s: float
    cpu_s: float
    bytes_per_event: float | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s


def measure(name: str, events: int, work: Callable[[], float | None]) -> Stage:
    wall, cpu = time.perf_counter(), time.process_time()
    bytes_per_event = work()
    return Stage(name, events, time.perf_counter() - wall, time.process_time() - cpu, bytes_per_event)


def options(count: int, seed: int) -> GeneratorOptions:
    return GeneratorOptions(count=count, now_ms=wall_clock_ms(), seed=seed, duration_ms=3 * DAY_MS)


@contextmanager
def broker_settings(use_settings: bool, partitions: int) -> Iterator[Settings]:
    """Settings whose transactions and labels topics are fresh topics on a running broker."""
    topics = {"transactions": unique_topic("bench-tx"), "labels": unique_topic("bench-labels")}
    if use_settings:
        base = load_settings()
        settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topics": base.kafka.topics.model_copy(update=topics)})}
        )
        admin = admin_client(settings)
        ensure_topics(admin, topics.values(), partitions=partitions, replication_factor=1)
        try:
            yield settings
        finally:
            delete_topics(admin, topics.values())
        return
    with (
        tempfile.TemporaryDirectory(prefix="featurestream-bench-") as state_dir,
        embedded_broker(Path(state_dir), kafka={"topics": topics, "partitions": partitions}) as settings,
    ):
        ensure_topics(admin_client(settings), topics.values(), partitions=partitions, replication_factor=1)
        yield settings


def run(count: int, seed: int, use_settings: bool, partitions: int) -> list[Stage]:
    encoder = SingleObjectEncoder(load_store().latest("transactions"))
    stages = []

    def generate() -> None:
        generator = TransactionGenerator(options(count, seed))
        for chunk in generator.chunks():
            chunk.transactions.records(generator.population)

    def generate_and_encode() -> float:
        generator = TransactionGenerator(options(count, seed))
        size = 0
        for chunk in generator.chunks():
            size += sum(map(len, encoder.encode_many(chunk.transactions.records(generator.population))))
        return size / count

    stages.append(measure("generate", count, generate))
    stages.append(measure("generate + encode (no Kafka)", count, generate_and_encode))

    with broker_settings(use_settings, partitions) as settings:
        topic = settings.kafka.topics.transactions
        generator = TransactionGenerator(options(count, seed))
        values: list[bytes] = []
        keys: list[str | None] = []
        for chunk in generator.chunks():
            values += encoder.encode_many(chunk.transactions.records(generator.population))
            keys += generator.population.card_ids[chunk.transactions.card].tolist()

        # Warm up: connection, idempotent producer id, partition leaders.
        warm = CountingProducer(settings)
        warm.send_many(topic, values[:10_000], keys[:10_000])
        assert warm.flush(60).failed == 0

        def produce_pre_encoded() -> float:
            producer = CountingProducer(settings)
            for start in range(0, count, 20_000):
                producer.send_many(topic, values[start : start + 20_000], keys[start : start + 20_000])
            report = producer.flush(120)
            assert report.failed == 0, report.failure_reasons
            return report.counts(topic).bytes / count

        stages.append(measure("produce pre-encoded values", count, produce_pre_encoded))
        values.clear()
        keys.clear()

        for labels in (False, True):

            def end_to_end(labels: bool = labels) -> float:
                summary = produce_transactions(settings, options(count, seed), labels=labels)
                assert summary.ok and summary.sent == count, summary
                return summary.bytes_per_event

            name = "end to end: generate + encode + produce" + (" + labels" if labels else "")
            stages.append(measure(name, count, end_to_end))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="events per stage (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--use-settings", action="store_true", help="use the broker from the settings")
    args = parser.parse_args()

    load_before = os.getloadavg()
    stages = run(args.count, args.seed, args.use_settings, args.partitions)
    table = Table(title=f"producing {args.count:,} generated transactions ({os.cpu_count()} cores)")
    for column in ("stage", "events/s", "CPU s / M events", "bytes/event"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in stages:
        table.add_row(
            stage.name,
            f"{stage.events_per_s:,.0f}",
            f"{stage.cpu_s / stage.events * 1e6:.2f}",
            f"{stage.bytes_per_event:.1f}" if stage.bytes_per_event else "-",
        )
    console.print(table)
    console.print(f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
