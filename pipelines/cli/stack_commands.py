"""`featurestream stack up | down | status`: the embedded stack.

By default one KRaft broker. ``--brokers N`` runs an N-node KRaft cluster, ``--spark-workers N`` a Spark
standalone master with N workers, and with ``feast.online_store = "redis"`` (and no existing Redis named) the
stack also runs a redis-server. The flags override ``stack.brokers`` / ``stack.spark_workers`` for this command;
set them in the environment or featurestream.toml too, so every other command's clients know the whole cluster.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.console import console
from pipelines.config import Settings, load_settings
from pipelines.kafka.topics import admin_client, describe_topics
from pipelines.stack.kafka_broker import KafkaBroker
from pipelines.stack.kafka_cluster import KafkaCluster, embedded_kafka
from pipelines.stack.redis_server import RedisServer
from pipelines.stack.serving import serving_down, serving_status, serving_up
from pipelines.stack.spark_standalone import SparkStandalone

app = typer.Typer(help="Start, stop and inspect the embedded stack (a real KRaft Kafka broker).", no_args_is_help=True)


def _stack_settings(brokers: int | None, spark_workers: int | None) -> Settings:
    stack: dict[str, int] = {}
    if brokers is not None:
        stack["brokers"] = brokers
    if spark_workers is not None:
        stack["spark_workers"] = spark_workers
    return load_settings(stack=stack) if stack else load_settings()


@app.command()
def up(
    brokers: Annotated[
        int | None, typer.Option(min=1, max=9, help="KRaft nodes (3: topics with RF 3, min ISR 2).")
    ] = None,
    spark_workers: Annotated[
        int | None, typer.Option(min=0, max=8, help="Also run a Spark standalone master and N workers.")
    ] = None,
) -> None:
    """Start what is configured (if not running), wait until it answers, and create the project's topics."""
    settings = _stack_settings(brokers, spark_workers)
    kafka = embedded_kafka(settings)
    what = "Kafka broker" if isinstance(kafka, KafkaBroker) else f"{settings.stack.brokers}-node KRaft cluster"
    started_at = time.monotonic()
    with console.status(f"starting {what} on {kafka.bootstrap_servers} ..."):
        started = kafka.up()
    elapsed = time.monotonic() - started_at
    if started:
        console.print(f"[green]{what} up[/] on {kafka.bootstrap_servers} in {elapsed:.1f}s")
    else:
        console.print(f"{what} already running on {kafka.bootstrap_servers}")
    created = kafka.create_project_topics()
    if created:
        kafka_settings = settings.kafka
        console.print(
            f"created topics: {', '.join(created)} (replication factor {kafka_settings.replication_factor}, "
            f"min.insync.replicas {kafka_settings.min_isr})"
        )
    redis = RedisServer(settings)
    if redis.wanted:
        with console.status(f"starting redis-server on {redis.address} ..."):
            started = redis.up()
        console.print(
            f"[green]redis-server up[/] on {redis.address}"
            if started
            else f"redis-server already running on {redis.address}"
        )
    if settings.stack.spark_workers:
        spark = SparkStandalone(settings)
        with console.status(f"starting Spark standalone master and {settings.stack.spark_workers} workers ..."):
            spark.up()
        console.print(
            f"[green]Spark standalone up[/]: {spark.master_url} with {settings.stack.spark_workers} workers "
            f"(UI {spark.webui_url}); run jobs with `featurestream submit stream --master {spark.master_url}`"
        )
    if (brokers or 1) > 1 and brokers != load_settings().stack.brokers:
        console.print(
            f"[yellow]note:[/] set FEATURESTREAM_STACK__BROKERS={brokers} (or stack.brokers in featurestream.toml) so "
            "every other command bootstraps from all brokers and creates topics with replication factor 3"
        )
    with console.status("starting the feature server and the scoring endpoint ..."):
        served = serving_up(settings)
    for line in served:
        console.print(line)
    console.print(f"state directory: {settings.stack.state_dir}")


@app.command()
def down() -> None:
    """Stop the processes this stack started (found by their pid files); nothing else is touched."""
    for line in serving_down(load_settings()):
        console.print(line)
    settings = load_settings()
    if SparkStandalone(settings).down():
        console.print("[green]Spark standalone master and workers stopped[/]")
    if RedisServer(settings).down():
        console.print("[green]redis-server stopped[/]")
    if KafkaCluster(settings).down():
        console.print("[green]KRaft cluster nodes stopped[/]")
    if KafkaBroker(settings).down():
        console.print("[green]Kafka broker stopped[/]")
    else:
        console.print("Kafka broker was not running")


@app.command()
def status() -> None:
    """What runs, where, and the topics."""
    settings = load_settings()
    kafka = embedded_kafka(settings)
    table = Table(title="featurestream stack", show_header=True)
    table.add_column("component")
    table.add_column("state")
    table.add_column("where")
    if isinstance(kafka, KafkaBroker):
        broker = kafka.status()
        state = f"[green]running[/] (pid {broker.pid})" if broker.running else "[red]stopped[/]"
        table.add_row("kafka broker (KRaft)", state, broker.bootstrap_servers)
        kafka_running = broker.running
    else:
        nodes = kafka.status().nodes
        for number, node in enumerate(nodes, start=1):
            state = f"[green]running[/] (pid {node.pid})" if node.running else "[red]stopped[/]"
            table.add_row(f"kafka node {number} (KRaft)", state, node.bootstrap_servers)
        kafka_running = any(node.running for node in nodes)
    redis = RedisServer(settings)
    if redis.wanted or redis.status().running:
        server = redis.status()
        state = f"[green]running[/] (pid {server.pid})" if server.running else "[red]stopped[/]"
        table.add_row("redis-server", state, server.address)
    spark = SparkStandalone(settings).status()
    if settings.stack.spark_workers or spark.master_running:
        state = f"[green]running[/], {spark.workers_running} workers" if spark.master_running else "[red]stopped[/]"
        table.add_row("spark standalone", state, spark.master_url)
    for row in serving_status(settings):
        table.add_row(*row)
    table.add_row("state directory", "", str(settings.stack.state_dir))
    console.print(table)
    if settings.kafka.bootstrap_servers:
        console.print(f"clients use the configured cluster {settings.bootstrap_servers}")
    if kafka_running or settings.kafka.bootstrap_servers:
        topics = Table(title=f"topics on {settings.bootstrap_servers}")
        topics.add_column("topic")
        topics.add_column("partitions", justify="right")
        topics.add_column("replication", justify="right")
        for info in describe_topics(admin_client(settings)):
            topics.add_row(info.name, str(info.partitions), str(info.replication_factor))
        console.print(topics)
    if not kafka_running and not settings.kafka.bootstrap_servers:
        raise typer.Exit(code=3)
