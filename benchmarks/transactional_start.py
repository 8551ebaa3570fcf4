"""How long a fresh transactional producer takes to start, as the exactly-once sinks start one (a script).

    .venv/bin/python benchmarks/transactional_start.py [--starts 20] [--json out.json]

A Spark task whose partition was last delivered by another Python worker starts a fresh producer for the same
transactional id (fencing the other). This starts ``--starts`` producers in a row on one transactional id against
a private broker, each fencing the one before, twice: as :class:`ExactlyOnceSink` does (producer and marker
consumer connected to every broker, metadata asked until a broker connection answers, then ``init_transactions``)
and with ``init_transactions`` alone, and reports milliseconds per start.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipelines.config import Settings
from pipelines.kafka.client_config import producer_config
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.kafka.transactional_sink import ExactlyOnceSink
from pipelines.testing import embedded_broker
from pipelines.testing.benchmark_report import emit_report, machine_description

TOPIC = "transactional-start"


def sink_starts(settings: Settings, starts: int) -> list[float]:
    """Milliseconds of each ``ExactlyOnceSink._new_clients`` (producer, marker consumer, connect, init)."""
    sink = ExactlyOnceSink(settings, f"start-{time.time_ns()}", TOPIC)
    kept, times = [], []
    for _ in range(starts):
        clock = time.perf_counter()
        clients = sink._new_clients(0)
        times.append((time.perf_counter() - clock) * 1000)
        kept.append(clients)  # left alive, like the other worker's kept producer, and fenced by the next
    for clients in kept:
        clients.close()
    return times


def bare_starts(settings: Settings, starts: int) -> list[float]:
    """Milliseconds of a producer created and initialised at once, without connecting first."""
    transactional_id = f"bare-{time.time_ns()}"
    kept, times = [], []
    for _ in range(starts):
        clock = time.perf_counter()
        producer = Producer({**producer_config(settings, transactional_id=transactional_id)})
        producer.init_transactions(60)
        times.append((time.perf_counter() - clock) * 1000)
        kept.append(producer)
    for producer in kept:
        producer.flush(0)
    return times


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "over_300_ms": sum(t > 300 for t in times),
        "all_ms": [round(t) for t in times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-bench-txstart-") as tmp, embedded_broker(Path(tmp)) as settings:
        ensure_topics(admin_client(settings), [TOPIC], partitions=1, replication_factor=1)
        bare_starts(settings, 1)  # the transaction coordinator's first start is not what a running job sees
        report = {
            "starts": args.starts,
            "sink_connects_first": summary(sink_starts(settings, args.starts)),
            "init_transactions_alone": summary(bare_starts(settings, args.starts)),
            "machine": machine_description(),
        }
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
