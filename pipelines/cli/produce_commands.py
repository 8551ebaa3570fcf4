"""`featurestream produce transactions | file`: events into Kafka, with a live rate and an exact summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings
from pipelines.generator import BAD_KINDS, GeneratorOptions, parse_duration, parse_start_time
from pipelines.generator.timing import wall_clock_ms
from pipelines.produce import ProduceSummary, ProgressUpdate, produce_file, produce_transactions
from pipelines.produce.summary import ProgressCallback

app = typer.Typer(help="Produce events to Kafka: generated card transactions, or records from a file.")

DELIVERY_FAILED_EXIT = 2


@contextmanager
def _progress(description: str, total: int | None, quiet: bool) -> Iterator[ProgressCallback | None]:
    if quiet:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TextColumn("labels {task.fields[labels]:,}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, rate=0.0, labels=0)

        def update(event: ProgressUpdate) -> None:
            rate = event.produced / event.elapsed_s if event.elapsed_s > 0 else 0.0
            bar.update(task, completed=event.produced, total=event.total, rate=rate, labels=event.labels)

        yield update


def _print_summary(summary: ProduceSummary) -> None:
    table = Table(title="produced")
    for column in ("topic", "sent", "failed", "bytes", "bytes/event"):
        table.add_column(column, justify="right" if column != "topic" else "left")
    rows = [summary.main] + ([summary.labels] if summary.labels else [])
    for row in rows:
        per_event = f"{row.bytes / row.attempted:.1f}" if row.attempted else "-"
        table.add_row(row.topic, f"{row.sent:,}", f"{row.failed:,}", f"{row.bytes:,}", per_event)
    console.print(table)
    if summary.fraud_by_pattern:
        fraud = ", ".join(f"{name} {count:,}" for name, count in summary.fraud_by_pattern.items())
        console.print(f"fraud: {fraud}")
    if summary.bad_by_kind:
        bad = ", ".join(f"{name} {count:,}" for name, count in summary.bad_by_kind.items())
        console.print(f"bad records ({summary.bad:,}): {bad}")
    if summary.rejected:
        console.print(f"[bold red]{summary.rejected:,} record(s) did not match the schema and were not produced[/]")
        for example in summary.rejection_examples:
            console.print(f"  {example}", markup=False)
    for reason, count in summary.failure_reasons.items():
        console.print(f"[red]delivery failed[/] for {count:,}: {reason}", highlight=False)
    console.print(
        f"{summary.sent:,} events in {summary.elapsed_s:.2f}s = [bold]{summary.events_per_s:,.0f} events/s[/]"
    )


def _finish(summary: ProduceSummary) -> None:
    _print_summary(summary)
    if not summary.ok:
        raise typer.Exit(code=DELIVERY_FAILED_EXIT)


@app.command()
def transactions(
    count: Annotated[int, typer.Option(min=0, help="Transactions to produce.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same traffic.")] = 0,
    population_seed: Annotated[
        int | None,
        typer.Option(help="Seed of the cards and merchants (default: --seed); an earlier run's seed continues it."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Events per second; default: as fast as possible.")
    ] = None,
    start_time: Annotated[
        str | None, typer.Option(help="ISO 8601 start of event time (history); default: real time.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="Event-time span like 90m, 12h, 3d (default 1d with --start-time).")
    ] = None,
    fraud_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Fraction of fraudulent transactions.")] = 0.01,
    bad_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of bad records.")] = 0.0,
    bad_kinds: Annotated[
        str, typer.Option(help=f"Comma-separated bad-record kinds: {', '.join(BAD_KINDS)}.")
    ] = ",".join(BAD_KINDS),
    out_of_order_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of events up to 5 minutes out of order.")
    ] = 0.0,
    late_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of late events.")] = 0.0,
    late_by: Annotated[str, typer.Option(help="How late the late events are (like 2h).")] = "1h",
    cards: Annotated[int, typer.Option(min=1, help="Distinct cards.")] = 20_000,
    merchants: Annotated[int, typer.Option(min=26, help="Distinct merchants.")] = 2_000,
    label_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of legitimate transactions that get a label.")
    ] = 0.02,
    labels: Annotated[bool, typer.Option(help="Also produce labels to the labels topic.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generated card transactions (keyed by card_id) and their labels, with fraud and optional bad records."""
    options = GeneratorOptions(
        count=count,
        now_ms=wall_clock_ms(),
        seed=seed,
        population_seed=population_seed,
        cards=cards,
        merchants=merchants,
        fraud_rate=fraud_rate,
        genuine_label_fraction=label_fraction,
        start_ms=parse_start_time(start_time) if start_time else None,
        duration_ms=parse_duration(duration) if duration else None,
        rate=rate,
        out_of_order_fraction=out_of_order_fraction,
        late_fraction=late_fraction,
        late_by_ms=parse_duration(late_by),
        bad_fraction=bad_fraction,
        bad_kinds=tuple(kind.strip() for kind in bad_kinds.split(",") if kind.strip()),
    )
    settings = load_settings()
    with _progress(f"→ {settings.kafka.topics.transactions}", count, quiet) as progress:
        summary = produce_transactions(settings, options, labels=labels, progress=progress)
    _finish(summary)


@app.command()
def file(
    path: Annotated[Path, typer.Argument(help="A .jsonl, .parquet or .avro file.", dir_okay=False)],
    topic: Annotated[str, typer.Option(help="Topic to produce to.")],
    subject: Annotated[
        str | None, typer.Option(help="Schema subject to validate against; default: the topic's (project topics).")
    ] = None,
    key_field: Annotated[str | None, typer.Option(help="Field whose value is the key; default card_id.")] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Records per second; default: as fast as possible.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Replay a JSON Lines, Parquet or Avro file onto a topic, each record validated against the topic's schema."""
    settings = load_settings()
    with _progress(f"{path.name} → {topic}", None, quiet) as progress:
        summary = produce_file(
            settings, path, topic, subject=subject, key_field=key_field, rate=rate, progress=progress
        )
    _finish(summary)
