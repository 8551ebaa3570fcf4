"""`featurestream skew`: training/serving skew of the current run (see :mod:`pipelines.training.skew`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from pipelines.cli.console import console
from pipelines.config import load_settings


def skew_command(
    sample: Annotated[int, typer.Option(min=1, help="Valid events to sample from the offline events.")] = 1_000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare, for a sample of streamed events, the stream's features with Feast's point-in-time join (what
    training reads) and with the online store (what serving reads). Exits 1 if any value differs."""
    from pipelines.training.skew import measure_skew

    with console.status(f"sampling {sample:,} events, point-in-time join and online lookups ..."):
        report = measure_skew(load_settings(), sample=sample, seed=seed)
    if as_json:
        payload = {**asdict(report), "offline_skew_rate": report.offline_skew_rate}
        payload["online_skew_rate"] = report.online_skew_rate
        typer.echo(json.dumps(payload, default=str))
    else:
        console.print(
            f"sampled {report.sampled_events:,} events ({report.ambiguous_events:,} left out: same entity and "
            f"millisecond as another event)\n"
            f"offline (point-in-time join vs stream): {report.offline_mismatches:,} of {report.offline_values:,} "
            f"values differ, skew rate {_rate(report.offline_skew_rate)}\n"
            f"online (online store vs stream's latest): {report.online_mismatches:,} of {report.online_values:,} "
            f"values over {report.online_entities:,} entities differ, skew rate {_rate(report.online_skew_rate)}"
        )
        for example in report.examples:
            console.print(f"  [red]differs[/] {example}")
    if report.offline_mismatches or report.online_mismatches:
        raise typer.Exit(1)


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.4%}"
