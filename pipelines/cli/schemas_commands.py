"""`featurestream schemas list | check`: the Avro schemas in schemas/ and their version history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings
from pipelines.schemas.compatibility import CompatibilityMode, check_history
from pipelines.schemas.store import SCHEMAS_ROOT, SchemaStore

app = typer.Typer(help="Inspect the Avro schemas in schemas/ and check their version history.", no_args_is_help=True)

RootOption = Annotated[
    Path, typer.Option("--root", help="Schema folder (schemas/<subject>/v<N>.avsc).", file_okay=False)
]


@app.command("list")
def list_schemas(root: RootOption = SCHEMAS_ROOT) -> None:
    """Every subject and version, with its record name and CRC-64-AVRO fingerprint."""
    store = SchemaStore(root)
    table = Table(title=f"schemas in {root}")
    for column in ("subject", "version", "record", "fingerprint (single-object header)", "fields"):
        table.add_column(column)
    for schema in store:
        current = " (current)" if schema.version == store.latest(schema.subject).version else ""
        table.add_row(
            schema.subject,
            f"v{schema.version}{current}",
            schema.full_name,
            schema.fingerprint.hex(),
            str(len(schema.definition["fields"])),
        )
    console.print(table)


@app.command()
def check(
    subject: Annotated[str | None, typer.Argument(help="One subject; all of them if omitted.")] = None,
    mode: Annotated[
        CompatibilityMode | None,
        typer.Option("--mode", case_sensitive=False, help="Default: serde.compatibility from the settings."),
    ] = None,
    root: RootOption = SCHEMAS_ROOT,
) -> None:
    """Check each version against the previous one; exit 1 if any change is incompatible."""
    mode = mode or CompatibilityMode(load_settings().serde.compatibility)
    store = SchemaStore(root)
    subjects = [subject] if subject else store.subjects()
    table = Table(title=f"{mode.value} compatibility")
    for column in ("subject", "version", "against", "verdict", "problems"):
        table.add_column(column)
    incompatible = 0
    for name in subjects:
        for report in check_history(store.versions(name), mode):
            verdict = "[green]compatible[/]" if report.compatible else "[bold red]INCOMPATIBLE[/]"
            against = f"v{report.previous}" if report.previous else "-"
            table.add_row(name, f"v{report.version}", against, verdict, "\n".join(report.problems))
            incompatible += not report.compatible
    console.print(table)
    if incompatible:
        console.print(f"[bold red]{incompatible} incompatible change(s)[/] under {mode.value}")
        raise typer.Exit(code=1)
