"""Test tiers by folder: tests/unit -> unit, tests/component -> component, tests/integration -> integration.

Shared fixtures: one local SparkSession per test process (component and integration tiers), and one real
Kafka broker per test session (integration tier), started through the same code as `featurestream stack up`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.kafka.topics import admin_client, delete_topics, ensure_topics
from pipelines.testing import embedded_broker, isolated_settings, unique_topic

TIERS = ("unit", "component", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(tmp_path_factory.mktemp("spark-state"))


@pytest.fixture(scope="session")
def spark(spark_settings: Settings):  # type: ignore[no-untyped-def]
    from pipelines.spark.session import get_or_create_session

    session = get_or_create_session(spark_settings, master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a real single-node KRaft broker that lives for the whole test session."""
    with embedded_broker(tmp_path_factory.mktemp("kafka-stack")) as settings:
        yield settings


@pytest.fixture
def topic(kafka: Settings) -> Iterator[str]:
    """A uniquely named topic with 3 partitions, deleted after the test."""
    name = unique_topic()
    admin = admin_client(kafka)
    ensure_topics(admin, [name], partitions=3, replication_factor=1)
    yield name
    delete_topics(admin, [name])
