"""`featurestream features apply | get`: the Feast repository and online lookups."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings

app = typer.Typer(help="The Feast feature repository (features/) and online feature lookups.", no_args_is_help=True)


@app.command()
def apply() -> None:
    """Register features/ in Feast's registry and create the online tables (what `feast apply` does)."""
    from pipelines.feast_io.paths import feast_paths
    from pipelines.feast_io.store import apply_repo

    settings = load_settings()
    specs = apply_repo(settings)
    for name, spec in specs.items():
        console.print(f"applied feature view [bold]{name}[/] ({len(spec.features)} features, key {spec.join_keys[0]})")
    console.print(f"registry: {feast_paths(settings).registry}")


@app.command()
def get(
    entity: Annotated[str, typer.Argument(help="Entity type: card or merchant.")],
    ids: Annotated[list[str], typer.Argument(help="One or more entity ids.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (an object per id, flat feature names).")] = False,
) -> None:
    """Print the online features of entities, with the event time they are as of."""
    from pipelines.lookups.online import get_online_features

    results = get_online_features(load_settings(), entity, ids)
    if as_json:
        payload = [result.as_flat_dict() for result in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, default=str))
        return
    for result in results:
        if not result.found:
            console.print(f"{entity} {result.entity_id}: [yellow]no online features[/]")
            continue
        table = Table(title=f"{entity} {result.entity_id} as of {result.event_time} (age {result.age_seconds:.0f}s)")
        table.add_column("feature")
        table.add_column("value", justify="right")
        for name, value in result.values.items():
            table.add_row(name, "null" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value))
        console.print(table)
