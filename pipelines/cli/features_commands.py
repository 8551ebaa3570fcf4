"""`featurestream features apply | get`: the Feast repository and online lookups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings

if TYPE_CHECKING:
    from pipelines.lookups.online import EntityFeatures

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
    feature_service: Annotated[
        str | None,
        typer.Option("--feature-service", "-s", help="Only this feature service's features of the entity."),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option("--feature", "-f", help="Only this feature (repeatable; plain name or view:feature)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (an object per id, flat feature names).")] = False,
) -> None:
    """Print the online features of entities, with the event time they are as of, their age and a status."""
    from pipelines.lookups.online import get_features

    results = get_features(entity, ids, feature_service=feature_service, features=features, settings=load_settings())
    if as_json:
        payload = [result.as_flat_dict() for result in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, default=str))
        return
    console.print(features_table(entity, results))


def features_table(entity: str, results: list[EntityFeatures]) -> Table:
    """One column per id, one row per feature, then when the values are as of, their age and the status."""
    table = Table(
        title=f"{entity} online features"
        + (f" ({results[0].feature_service})" if results and results[0].feature_service else "")
    )
    table.add_column("feature")
    for result in results:
        table.add_column(result.entity_id, justify="right")
    names = list(results[0].values) if results else []
    for name in names:
        table.add_row(name, *(_cell(result.values[name]) for result in results))
    table.add_row("event_time", *(str(r.event_time) if r.event_time else "-" for r in results))
    table.add_row("age", *(f"{r.age_seconds:.0f}s" if r.age_seconds is not None else "-" for r in results))
    table.add_row("status", *("found" if r.found else "[yellow]not_found[/]" for r in results))
    return table


def _cell(value: object) -> str:
    if value is None:
        return "null"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
