"""Entry point of the `featurestream` console script."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated

import typer

from pipelines.cli import (
    features_commands,
    models_commands,
    observe_commands,
    produce_commands,
    schemas_commands,
    serve_commands,
    skew_commands,
    stack_commands,
)
from pipelines.cli.console import console, errors
from pipelines.config import load_settings
from pipelines.errors import FeaturestreamError

app = typer.Typer(
    help="featurestream: Kafka -> Spark Structured Streaming -> Feast features and XGBoost scores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_commands.app, name="stack")
app.add_typer(produce_commands.app, name="produce")
app.add_typer(schemas_commands.app, name="schemas")
app.add_typer(features_commands.app, name="features")
app.add_typer(models_commands.app, name="models")
app.command("train")(models_commands.train_command)
app.command("serve")(serve_commands.serve_command)
app.command("status")(observe_commands.status_command)
app.command("report")(observe_commands.report_command)
app.command("skew")(skew_commands.skew_command)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job in jobs/ (file name without .py).")],
    master: Annotated[str | None, typer.Option(help="Spark master URL; default from settings.")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the spark-submit command, do not run it.")] = False,
) -> None:
    """spark-submit a job from jobs/ with the pinned jars; extra arguments go to the job."""
    from pipelines.spark.submit import spark_submit_argv
    from pipelines.stack.processes import child_environment

    argv = spark_submit_argv(load_settings(), job, ctx.args, master=master)
    if print_only:
        console.print(" ".join(argv), soft_wrap=True, markup=False, highlight=False)
        return
    raise typer.Exit(subprocess.call(argv, env=child_environment()))


@app.command()
def smoke(
    records: Annotated[int, typer.Option(min=1, help="Committed records to produce.")] = 1000,
) -> None:
    """End-to-end smoke: transactional produce to a fresh topic, Spark reads it back read_committed."""
    from pipelines.smoke import run_smoke

    started = time.monotonic()
    with console.status("producing a committed and an aborted transaction, then reading back with Spark ..."):
        result = run_smoke(load_settings(), records=records)
    console.print(
        f"[green]smoke OK[/]: produced {result.produced} committed (+{result.aborted} aborted) records to "
        f"{result.topic}; Spark's Kafka source read back exactly {result.read_back} "
        f"in {time.monotonic() - started:.1f}s"
    )


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=1000, help="Generated transactions to stream.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
) -> None:
    """The main job on the embedded default: stack up, traffic, streaming features, lookups."""
    from pipelines.demo import run_demo

    console.rule("featurestream demo")
    run_demo(load_settings(), console, events=events, seed=seed)


def main() -> None:
    """Run the CLI; deliberate errors become one clear line and exit code 1, not a traceback."""
    try:
        app()
    except FeaturestreamError as exc:
        errors.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(1)
