"""`featurestream status` and `featurestream report`: watching a run, live or after the fact.

``status`` scrapes the streaming job's ``/metrics`` (``observability.metrics_host:metrics_port``, or ``--url``);
when nothing answers it says so and shows what the run log recorded instead, exiting 3 like `stack status`
when nothing runs. ``report`` renders the run log as an HTML page with embedded plots. Both only call
:mod:`pipelines.observability`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings
from pipelines.observability.errors import MetricsEndpointError, RunLogError
from pipelines.observability.run_log import default_run_log, read_run_log
from pipelines.observability.status import (
    PipelineStatus,
    metrics_url,
    scrape,
    status_from_exposition,
    status_from_run_log,
)

NOTHING_RUNNING = 3


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_status(status: PipelineStatus) -> Group:
    """Rich tables for a status (separate from printing so tests can render it to text)."""
    queries = Table(title=f"queries ({status.source})")
    for column in ("query", "state", "batch", "read", "valid", "scores", "in/s", "done/s"):
        queries.add_column(column, justify="left" if column in ("query", "state") else "right")
    for q in status.queries.values():
        state = {True: "[green]active[/]", False: "[red]stopped[/]", None: "-"}[q.active]
        queries.add_row(
            q.name,
            state,
            "-" if q.last_batch_id is None else str(q.last_batch_id),
            f"{q.records_read:,}",
            f"{q.valid:,}",
            f"{q.scores:,}",
            _n(q.input_rate, 0),
            _n(q.processing_rate, 0),
        )
    parts: list[Table] = [queries]

    side = Table(title="lag, dead letters, model, state")
    side.add_column("what")
    side.add_column("value", justify="right")
    if status.lag:
        for (topic, partition), lag in sorted(status.lag.items()):
            side.add_row(f"lag {topic}[{partition}]", f"{lag:,}")
        side.add_row("[bold]lag total[/]", f"{status.total_lag:,}")
    for reason, count in sorted(status.dead_letters.items()):
        side.add_row(f"dead letters: {reason}", f"{count:,}")
    if not status.dead_letters:
        side.add_row("dead letters", "0")
    for name, version in status.models.items():
        side.add_row(f"model {name}".strip(), f"v{version}")
    if not status.models:
        side.add_row("model", "none scoring")
    for q in status.queries.values():
        if q.state_rows is not None:
            side.add_row(f"state rows {q.name}", f"{q.state_rows:,}")
    for view, age in sorted(status.freshness_s.items()):
        side.add_row(f"freshness {view}", f"{age:,.0f} s")
    if status.alerts:
        side.add_row("[red]alerts raised[/]", f"{status.alerts:,}")
    parts.append(side)

    if status.drift:
        drift = Table(title="drift vs training baseline")
        drift.add_column("feature")
        drift.add_column("PSI", justify="right")
        drift.add_column("state")
        for feature, (psi, drifting) in sorted(status.drift.items()):
            drift.add_row(feature, _n(psi, 3), "[red]DRIFTING[/]" if drifting else "[green]ok[/]")
        parts.append(drift)
    if status.quality:
        quality = Table(title="live quality (delayed labels)")
        for name in status.quality:
            quality.add_column(name, justify="right")
        quality.add_row(*(_n(v, 0 if k == "labelled" else 3) for k, v in status.quality.items()))
        parts.append(quality)
    return Group(*parts)


def status_command(
    url: Annotated[str | None, typer.Option(help="Metrics endpoint; default from observability settings.")] = None,
    run_log: Annotated[
        Path | None, typer.Option(help="Run log to fall back on; default <state_dir>/runs/<query>/batches.jsonl.")
    ] = None,
) -> None:
    """Running queries, rates, lag, dead letters by reason, model version, drift and live quality."""
    settings = load_settings()
    endpoint = url or metrics_url(settings.observability.metrics_host, settings.observability.metrics_port)
    try:
        text = scrape(endpoint)
    except MetricsEndpointError as exc:
        console.print(f"[yellow]nothing is running[/]: {exc}")
        log_path = run_log or default_run_log(settings)
        try:
            entries = read_run_log(log_path)
        except RunLogError as missing:
            console.print(f"and no run log to show: {missing}")
            raise typer.Exit(NOTHING_RUNNING) from None
        console.print(render_status(status_from_run_log(entries, f"run log {log_path}, last run")))
        raise typer.Exit(NOTHING_RUNNING) from None
    status = status_from_exposition(text, source=endpoint)
    if not status.queries:
        console.print(f"[yellow]{endpoint} answers but reports no featurestream query yet[/]")
        raise typer.Exit(NOTHING_RUNNING)
    console.print(render_status(status))


def report_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for report.html and the PNGs; default a new one.")
    ] = None,
    run_log: Annotated[
        Path | None, typer.Option(help="Run log to report on; default <state_dir>/runs/<query>/batches.jsonl.")
    ] = None,
) -> None:
    """A self-contained HTML report of a run (plots embedded, and saved as PNGs next to it)."""
    from pipelines.observability.report import write_report

    with console.status("rendering the run report ..."):
        files = write_report(load_settings(), run_log=run_log, out_dir=out)
    console.print(f"report: {files.html}  ({len(files.images)} plots in {files.html.parent})")
