"""Test helpers for the scale-out stack: a private redis-server, a multi-broker KRaft cluster, Spark standalone.

Each starts the same code as `featurestream stack up`, in a private state directory on free ports, and stops
what it started when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.stack.processes import free_port, free_port_block
from pipelines.stack.redis_server import RedisServer


def cluster_settings(state_dir: Path, *, brokers: int = 1, spark_workers: int = 0, **overrides: object) -> Settings:
    """Settings for a private stack of ``brokers`` KRaft nodes (and optionally Spark workers) on free ports."""
    base = free_port_block(2 * brokers)
    stack: dict[str, object] = {
        "state_dir": state_dir,
        "broker_port": base,
        "controller_port": base + 1,
        "brokers": brokers,
        "broker_heap": "384m",
        "redis_port": free_port(),
        "spark_workers": spark_workers,
        "spark_master_port": free_port(),
        "spark_master_webui_port": free_port(),
        "jars_dir": PROJECT_ROOT / "infra" / "jars",
        **dict(overrides.pop("stack", {}) or {}),  # type: ignore[call-overload]
    }
    return Settings(stack=stack, **overrides)  # type: ignore[arg-type]


@contextmanager
def embedded_redis(state_dir: Path, **overrides: object) -> Iterator[Settings]:
    """Settings with the Redis online store on a private redis-server, running for the block."""
    feast = {"online_store": "redis", **dict(overrides.pop("feast", {}) or {})}  # type: ignore[call-overload]
    settings = cluster_settings(state_dir, feast=feast, **overrides)  # type: ignore[arg-type]
    server = RedisServer(settings)
    server.up()
    try:
        yield settings
    finally:
        server.down()


def cluster_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that make a child process (spark-submit, the CLI) build these same settings,
    the scale-out ones included (brokers, Redis online store, Spark ports)."""
    from pipelines.testing import settings_environment

    stack = settings.stack
    env = {
        **settings_environment(settings),
        "FEATURESTREAM_STACK__BROKERS": str(stack.brokers),
        "FEATURESTREAM_STACK__REDIS_PORT": str(stack.redis_port),
        "FEATURESTREAM_STACK__SPARK_WORKERS": str(stack.spark_workers),
        "FEATURESTREAM_STACK__SPARK_MASTER_PORT": str(stack.spark_master_port),
        "FEATURESTREAM_STACK__SPARK_MASTER_WEBUI_PORT": str(stack.spark_master_webui_port),
        "FEATURESTREAM_FEAST__ONLINE_STORE": settings.feast.online_store,
        "FEATURESTREAM_KAFKA__REPLICATION_FACTOR": str(settings.kafka.replication_factor),
    }
    if settings.stream.max_offsets_per_trigger is not None:
        env["FEATURESTREAM_STREAM__MAX_OFFSETS_PER_TRIGGER"] = str(settings.stream.max_offsets_per_trigger)
    if settings.feast.redis_connection_string is not None:
        env["FEATURESTREAM_FEAST__REDIS_CONNECTION_STRING"] = settings.feast.redis_connection_string.get_secret_value()
    return env
