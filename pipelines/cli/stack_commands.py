"""`featurestream stack up | down | status`: the embedded single-node Kafka broker."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import load_settings
from pipelines.kafka.topics import admin_client, describe_topics
from pipelines.stack.kafka_broker import KafkaBroker

app = typer.Typer(help="Start, stop and inspect the embedded stack (a real KRaft Kafka broker).", no_args_is_help=True)


@app.command()
def up() -> None:
    """Start the broker (if not running), wait until it answers, and create the project's topics."""
    settings = load_settings()
    broker = KafkaBroker(settings)
    started_at = time.monotonic()
    with console.status(f"starting Kafka broker on {broker.bootstrap_servers} ..."):
        started = broker.up()
    elapsed = time.monotonic() - started_at
    if started:
        console.print(
            f"[green]Kafka broker up[/] on {broker.bootstrap_servers} in {elapsed:.1f}s (pid {broker.status().pid})"
        )
    else:
        console.print(f"Kafka broker already running on {broker.bootstrap_servers} (pid {broker.status().pid})")
    created = broker.create_project_topics()
    if created:
        console.print(f"created topics: {', '.join(created)}")
    console.print(f"state directory: {settings.stack.state_dir}")


@app.command()
def down() -> None:
    """Stop the processes this stack started (found by their pid files); nothing else is touched."""
    broker = KafkaBroker(load_settings())
    if broker.down():
        console.print("[green]Kafka broker stopped[/]")
    else:
        console.print("Kafka broker was not running")


@app.command()
def status() -> None:
    """What runs, where, and the topics."""
    settings = load_settings()
    broker = KafkaBroker(settings).status()
    table = Table(title="featurestream stack", show_header=True)
    table.add_column("component")
    table.add_column("state")
    table.add_column("where")
    state = f"[green]running[/] (pid {broker.pid})" if broker.running else "[red]stopped[/]"
    table.add_row("kafka broker (KRaft)", state, broker.bootstrap_servers)
    table.add_row("state directory", "", str(broker.state_dir))
    console.print(table)
    if settings.kafka.bootstrap_servers:
        console.print(f"clients use the configured cluster {settings.bootstrap_servers}")
    if broker.running or settings.kafka.bootstrap_servers:
        topics = Table(title=f"topics on {settings.bootstrap_servers}")
        topics.add_column("topic")
        topics.add_column("partitions", justify="right")
        topics.add_column("replication", justify="right")
        for info in describe_topics(admin_client(settings)):
            topics.add_row(info.name, str(info.partitions), str(info.replication_factor))
        console.print(topics)
    if not broker.running and not settings.kafka.bootstrap_servers:
        raise typer.Exit(code=3)
