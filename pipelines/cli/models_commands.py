"""`featurestream train` and `featurestream models list | show | promote | rollback | challenger`.

``app`` is the ``models`` command group; ``train_command`` is the top-level ``train`` command (registered in
:mod:`pipelines.cli.main`). Both only call the library (:mod:`pipelines.training`, :mod:`pipelines.models`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings
from pipelines.models.metadata import EvaluationMetrics
from pipelines.models.registry import ModelRegistry, ModelVersion
from pipelines.training.train import ProgressFunction, RoundProgress

app = typer.Typer(help="The model registry: versions, the production alias, rollback.", no_args_is_help=True)


def _registry() -> ModelRegistry:
    return ModelRegistry.from_settings(load_settings())


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("list")
def list_versions() -> None:
    """Every registered version with its validation and test metrics; the production one is marked."""
    registry = _registry()
    versions = registry.versions()
    if not versions:
        console.print(f"no versions of {registry.model_name} in {registry.root}; `featurestream train` registers one")
        return
    production = registry.production()
    challenger = registry.challenger()
    table = Table(title=f"{registry.model_name} ({registry.root})")
    columns = ("version", "created", "train/val/test rows", "val ROC-AUC", "test ROC-AUC", "test PR-AUC")
    for column in (*columns, "test precision", "test recall"):
        table.add_column(column, justify="left" if column in ("version", "created") else "right")
    table.add_column("data")
    for version in versions:
        training = version.metadata.training
        validation, test = training.validation_metrics, training.test_metrics
        marker = " [bold green]production[/]" if production and production.version == version.version else ""
        marker += " [bold yellow]challenger[/]" if challenger and challenger.version == version.version else ""
        table.add_row(
            f"{version.version}{marker}",
            version.metadata.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{training.rows.train:,}/{training.rows.validation:,}/{training.rows.test:,}",
            _number(validation.roc_auc),
            _number(test.roc_auc if test else None),
            _number(test.pr_auc if test else None),
            _number(test.precision if test else None, 3),
            _number(test.recall if test else None, 3),
            training.data_fingerprint[:12],
        )
    console.print(table)


@app.command()
def show(version: Annotated[int, typer.Argument(help="A registered version number.")]) -> None:
    """A version's full metadata (features in order, training window, counts, metrics) as JSON."""
    typer.echo(_registry().version(version).metadata.model_dump_json(indent=2))


@app.command()
def promote(version: Annotated[int, typer.Argument(help="The version to make production.")]) -> None:
    """Make VERSION the production model (an atomic switch; `rollback` undoes it)."""
    registry = _registry()
    before = registry.production()
    model = registry.promote(version)
    was = f" (was v{before.version})" if before and before.version != model.version else ""
    console.print(f"{registry.model_name} [bold]v{model.version}[/] is production{was}")


@app.command()
def rollback() -> None:
    """Return production to the version promoted before the current one."""
    registry = _registry()
    model = registry.rollback()
    console.print(f"rolled back: {registry.model_name} [bold]v{model.version}[/] is production again")


@app.command()
def challenger(
    version: Annotated[int | None, typer.Argument(help="The version to score in shadow.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop shadow scoring.")] = False,
) -> None:
    """Score VERSION in shadow next to production (its scores go to the shadow-scores topic, never alerting
    anyone), from the stream's next batch on; `--clear` stops it."""
    if (version is None) == (not clear):
        raise typer.BadParameter("give a VERSION or --clear (not both)")
    registry = _registry()
    model = registry.set_challenger(None if clear else version)
    if model is None:
        console.print(f"{registry.model_name}: no challenger; shadow scoring stops at the next batch")
    else:
        console.print(f"{registry.model_name} [bold]v{model.version}[/] is the challenger (shadow scores)")


@contextmanager
def _training_progress() -> Iterator[ProgressFunction]:
    columns = (
        TextColumn("[bold]boosting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "val PR-AUC {task.fields[aucpr]:.4f}  ROC-AUC {task.fields[auc]:.4f}  best round {task.fields[best]}"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("boosting", total=None, aucpr=0.0, auc=0.0, best="-")

        def update(event: RoundProgress) -> None:
            bar.update(
                task,
                completed=event.iteration + 1,
                total=event.max_rounds,
                aucpr=event.validation.get("aucpr", 0.0),
                auc=event.validation.get("auc", 0.0),
                best="-" if event.best_iteration is None else event.best_iteration + 1,
            )

        yield update
        bar.update(task, total=bar.tasks[0].completed)  # early stopping ends before the maximum


def print_training_report(version: ModelVersion, promoted: bool) -> None:
    """Metrics of every split, the calibration of the test split (of validation without one), and where the version
    went."""
    training = version.metadata.training
    chosen = "best F1 on validation" if training.threshold_policy == "best_f1" else "configured"
    table = Table(
        title=f"{version.model_name} v{version.version} at threshold {training.alert_threshold:.4g} ({chosen})"
    )
    table.add_column("metric")
    table.add_column("train", justify="right")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    splits = [training.train_metrics, training.validation_metrics, training.test_metrics]
    figures: list[tuple[str, Callable[[EvaluationMetrics], str]]] = [
        ("events", lambda m: f"{m.rows:,}"),
        ("positives", lambda m: f"{m.positives:,}"),
        ("ROC-AUC", lambda m: _number(m.roc_auc)),
        ("PR-AUC (average precision)", lambda m: _number(m.pr_auc)),
        ("alerts", lambda m: f"{m.alerts:,}"),
        ("precision", lambda m: _number(m.precision)),
        ("recall", lambda m: _number(m.recall)),
        ("Brier score", lambda m: _number(m.brier)),
    ]
    for name, figure in figures:
        table.add_row(name, *[figure(metrics) if metrics is not None else "-" for metrics in splits])
    console.print(table)
    if training.test_metrics is None:
        console.print("no test split: the validation split chose the threshold, and its figures flatter the model")
    validation = training.validation_metrics
    if validation.negative_weight != 1.0:
        console.print(
            f"genuine events are labelled at {1 / validation.negative_weight:.1%}: precision, PR-AUC, Brier and the "
            f"calibration count each labelled genuine event {validation.negative_weight:g} times, as in traffic"
        )
    if training.test_metrics is not None:
        console.print(_calibration_table(training.test_metrics, "test"))
    else:
        console.print(_calibration_table(validation, "validation"))
    console.print(
        f"events {training.training_window_start:%Y-%m-%d %H:%M} .. {training.training_window_end:%Y-%m-%d %H:%M} "
        f"(validation from {training.validation_start:%Y-%m-%d %H:%M}{_test_from(training.test_start)}), labels "
        f"known by {training.label_cutoff:%Y-%m-%d %H:%M:%S} UTC, {len(training.feature_names)} features from "
        f"{training.feature_service}, {training.best_iteration + 1} trees, data {training.data_fingerprint[:12]}"
    )
    state = "[bold green]promoted to production[/]" if promoted else "not promoted (`featurestream models promote`)"
    console.print(f"registered [bold]{version.model_name} v{version.version}[/] at {version.path}: {state}")


def _test_from(test_start: datetime | None) -> str:
    return f", test from {test_start:%Y-%m-%d %H:%M}" if test_start is not None else ""


def _calibration_table(metrics: EvaluationMetrics, split: str) -> Table:
    title = (
        f"{split} calibration (genuine rows weighted as in traffic)"
        if metrics.negative_weight != 1.0
        else f"{split} calibration (scores are weighted for imbalance, not probabilities)"
    )
    table = Table(title=title)
    for column in ("score bin", "events", "mean score", "observed rate"):
        table.add_column(column, justify="right")
    for bin_ in metrics.calibration:
        if bin_.count:
            table.add_row(
                f"{bin_.lower:.1f}-{bin_.upper:.1f}",
                f"{bin_.count:,}",
                _number(bin_.mean_predicted, 3),
                _number(bin_.observed_rate, 3),
            )
    return table


def train_command(
    promote: Annotated[bool, typer.Option("--promote", help="Make the new version production right away.")] = False,
    label_cutoff: Annotated[
        str | None,
        typer.Option(help="Use only labels known by this ISO 8601 time (naive means UTC); default: now."),
    ] = None,
) -> None:
    """Train a model on point-in-time features of labelled events and register it as a new version."""
    from pipelines.training.run import parse_cutoff, run_training

    settings = load_settings()
    cutoff = parse_cutoff(label_cutoff) if label_cutoff else None
    with _training_progress() as progress:
        run = run_training(
            settings,
            label_cutoff=cutoff,
            promote=promote,
            progress=progress,
            stage=lambda message: console.print(f"[dim]{message}[/]"),
        )
    labels, stats = run.labels, run.training_set.stats
    console.print(
        f"labels: {labels.records_read:,} read ({labels.undecodable:,} undecodable), {stats.after_cutoff:,} after "
        f"the cut-off, {stats.superseded:,} superseded, {stats.without_event:,} without a streamed event -> "
        f"{stats.rows:,} training rows"
    )
    print_training_report(run.version, run.promoted)
