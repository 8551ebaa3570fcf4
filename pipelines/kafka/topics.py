"""Create and describe topics through confluent-kafka's AdminClient."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.client_config import admin_config


class TopicError(FeaturestreamError):
    """A topic could not be created or described."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication_factor: int


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(admin_config(settings))


def ensure_topics(
    admin: AdminClient,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; existing ones are left as they are. Returns those created."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [name for name in dict.fromkeys(names) if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config or {})
            for name in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() == "TOPIC_ALREADY_EXISTS":  # raced with another creator: fine
                continue
            raise TopicError(f"cannot create topic {name!r}: {error.str()}") from exc
    return created


def describe_topics(admin: AdminClient, names: Iterable[str] | None = None, timeout_s: float = 10.0) -> list[TopicInfo]:
    """Partition and replica counts of the named topics (all non-internal ones if None)."""
    metadata = admin.list_topics(timeout=timeout_s)
    wanted = set(names) if names is not None else None
    infos = []
    for name, topic in sorted(metadata.topics.items()):
        if name.startswith("__") or (wanted is not None and name not in wanted):
            continue
        replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        infos.append(TopicInfo(name=name, partitions=len(topic.partitions), replication_factor=replicas))
    return infos


def delete_topics(admin: AdminClient, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Delete topics, ignoring ones that are already gone (used by tests to clean up)."""
    futures = admin.delete_topics(list(names), operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise TopicError(f"cannot delete topic {name!r}: {exc.args[0].str()}") from exc
