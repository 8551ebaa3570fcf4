"""`featurestream demo`: the main job on the embedded default, end to end, in one readable summary.

Stack up -> Feast apply -> generated card traffic (with bad records of every kind) produced to Kafka -> the
streaming feature job drains the topic with spark-submit (availableNow) -> conservation, dead letters by reason,
and the online features of a few cards read back through Feast.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.feast_io.store import apply_repo
from pipelines.generator.generator import GeneratorOptions
from pipelines.lookups.online import get_online_features
from pipelines.produce.transactions import produce_transactions
from pipelines.spark.submit import spark_submit_argv
from pipelines.stack.kafka_broker import KafkaBroker


class DemoFailedError(FeaturestreamError):
    """A demo step did not do what it should (the message says which)."""


def run_demo(settings: Settings, console: Console, *, events: int = 50_000, seed: int = 42) -> None:
    started = time.monotonic()
    if settings.kafka.bootstrap_servers is None:
        broker = KafkaBroker(settings)
        with console.status("starting the embedded Kafka broker ..."):
            broker.up()
        broker.create_project_topics()
        console.print(f"[green]1.[/] Kafka broker (KRaft) up on {broker.bootstrap_servers}")
    apply_repo(settings)
    console.print("[green]2.[/] Feast repository applied (card_features, merchant_features, fraud_model_v1)")

    now = datetime.now(UTC).replace(microsecond=0)
    options = GeneratorOptions(
        count=events,
        now_ms=int(now.timestamp() * 1000),
        seed=seed,
        cards=5_000,
        merchants=500,
        start_ms=int((now - timedelta(days=2)).timestamp() * 1000),
        duration_ms=int(timedelta(days=2).total_seconds() * 1000),
        bad_fraction=0.01,
    )
    with console.status(f"producing {events:,} generated transactions ..."):
        summary = produce_transactions(settings, options)
    console.print(
        f"[green]3.[/] produced {summary.main.sent:,} transactions over the last 2 days "
        f"({sum(summary.bad_by_kind.values())} deliberately bad) and {summary.labels.sent if summary.labels else 0:,}"
        " labels"
    )

    with console.status("streaming features: spark-submit jobs/stream.py --available-now ..."):
        completed = subprocess.run(
            spark_submit_argv(settings, "stream", ["--available-now"]), capture_output=True, text=True, check=False
        )
    if completed.returncode != 0:
        raise DemoFailedError(f"the streaming job failed:\n{completed.stderr[-3000:]}")
    report_line = next((line for line in reversed(completed.stdout.splitlines()) if line.startswith("{")), None)
    if report_line is None:
        raise DemoFailedError(f"the streaming job printed no summary:\n{completed.stdout[-2000:]}")
    totals = json.loads(report_line)
    log_lines = Path(totals["batch_log"]).read_text(encoding="utf-8").splitlines()
    batches = [json.loads(line) for line in log_lines][-totals["batches"] :]
    console.print(
        f"[green]4.[/] streamed {totals['records_read']:,} records in {totals['batches']} micro-batches: "
        f"{totals['valid']:,} valid + {totals['dead_lettered']:,} dead-lettered "
        f"({'conserved' if totals['valid'] + totals['dead_lettered'] == totals['records_read'] else 'NOT conserved'})"
    )
    _dead_letter_table(console, batches)

    cards = _busiest_cards(batches, settings)
    for result in get_online_features(settings, "card", cards):
        table = Table(title=f"card {result.entity_id}: online features as of {result.event_time}")
        table.add_column("feature")
        table.add_column("value", justify="right")
        for name, value in result.values.items():
            table.add_row(
                name, "null" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)
            )
        console.print(table)
    console.print(f"[bold green]demo done[/] in {time.monotonic() - started:.0f}s; state in {settings.stack.state_dir}")


def _dead_letter_table(console: Console, batches: list[dict[str, Any]]) -> None:
    reasons: dict[str, int] = {}
    for batch in batches:
        for reason, count in batch["dead_letters_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + count
        for expectation, count in batch["failed_expectations"].items():
            reasons[f"  failed {expectation}"] = reasons.get(f"  failed {expectation}", 0) + count
    table = Table(title="dead letters by reason (on the dead-letter topic, with source topic/partition/offset)")
    table.add_column("reason")
    table.add_column("records", justify="right")
    for reason, count in sorted(reasons.items()):
        table.add_row(reason, f"{count:,}")
    console.print(table)


def _busiest_cards(batches: list[dict[str, Any]], settings: Settings, limit: int = 3) -> list[str]:
    """A few card ids that have online features (read from the offline store's last batch)."""
    import pyarrow.parquet as pq

    from pipelines.feast_io.offline import offline_batch_path

    last = batches[-1]["batch_id"]
    table = pq.read_table(
        offline_batch_path(settings, "card_features", last), columns=["card_id", "card_txn_count_24h"]
    )
    frame = table.to_pandas().sort_values("card_txn_count_24h", ascending=False)
    return frame["card_id"].drop_duplicates().head(limit).tolist()
