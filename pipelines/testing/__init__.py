"""Helpers that ship with the library so tests (ours and users') read like the docs.

``embedded_broker`` starts the same real broker as `featurestream stack up`, on free ports in a
private state directory; ``unique_topic`` names a topic no other test uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.stack.kafka_broker import KafkaBroker
from pipelines.stack.processes import free_port


def isolated_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings for a private stack: its own state dir and free ports, the project's jars."""
    broker_port, controller_port = free_port(), free_port()
    stack = {
        "state_dir": state_dir,
        "broker_port": broker_port,
        "controller_port": controller_port,
        "broker_heap": "512m",
        "jars_dir": PROJECT_ROOT / "infra" / "jars",
    }
    return Settings(stack=stack, **overrides)  # type: ignore[arg-type]


@contextmanager
def embedded_broker(state_dir: Path, **overrides: object) -> Iterator[Settings]:
    """A running real broker for the duration of the block; stopped (and checked stopped) afterwards."""
    settings = isolated_settings(state_dir, **overrides)
    broker = KafkaBroker(settings)
    broker.up()
    try:
        yield settings
    finally:
        broker.down()


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stream_settings(base: Settings, state_dir: Path, **stream: object) -> Settings:
    """Per-test settings on a shared broker: unique topics, a private Feast store, checkpoint and query name."""
    suffix = uuid.uuid4().hex[:8]
    topics = base.kafka.topics.model_copy(
        update={
            name: f"{getattr(base.kafka.topics, name)}-{suffix}"
            for name in ("transactions", "labels", "scores", "dead_letter", "alerts")
        }
    )
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topics": topics, "client_id": f"featurestream-{suffix}"}),
            "stack": base.stack.model_copy(update={"state_dir": state_dir}),
            "stream": base.stream.model_copy(update={"query_name": f"features_{suffix}", **stream}),
        }
    )


def settings_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that make a child process (spark-submit, the CLI) build these same settings.

    Covers what :func:`isolated_settings` and :func:`stream_settings` change; secrets are not exported.
    """
    env = {
        "FEATURESTREAM_STACK__STATE_DIR": str(settings.stack.state_dir),
        "FEATURESTREAM_STACK__BROKER_PORT": str(settings.stack.broker_port),
        "FEATURESTREAM_STACK__CONTROLLER_PORT": str(settings.stack.controller_port),
        "FEATURESTREAM_KAFKA__CLIENT_ID": settings.kafka.client_id,
        "FEATURESTREAM_STREAM__QUERY_NAME": settings.stream.query_name,
        "FEATURESTREAM_SPARK__MASTER": settings.spark.master,
    }
    for name in ("transactions", "labels", "scores", "shadow_scores", "dead_letter", "alerts"):
        env[f"FEATURESTREAM_KAFKA__TOPICS__{name.upper()}"] = getattr(settings.kafka.topics, name)
    if settings.kafka.bootstrap_servers:
        env["FEATURESTREAM_KAFKA__BOOTSTRAP_SERVERS"] = settings.kafka.bootstrap_servers
    return env
