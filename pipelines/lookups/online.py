"""Online feature lookups through Feast's SDK, with each value's event timestamp and freshness.

Feast returns features keyed ``view__feature`` or plain names; callers here get the plain, flat names the
streaming job writes (``card_txn_count_1h``, ...), because that is what models and users ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.errors import FeaturestreamError


class UnknownEntityTypeError(FeaturestreamError):
    """The entity type is not declared by the domain."""


@dataclass(frozen=True)
class EntityFeatures:
    """One entity's online features; ``found`` is False when the store has nothing for it."""

    entity: str
    entity_id: str
    found: bool
    values: dict[str, Any]
    event_time: datetime | None

    @property
    def age_seconds(self) -> float | None:
        if self.event_time is None:
            return None
        return (datetime.now(UTC) - self.event_time).total_seconds()

    def as_flat_dict(self) -> dict[str, Any]:
        """The JSON shape of `featurestream features get --json`: join key, features, event time."""
        key_column = f"{self.entity}_id"
        return {
            key_column: self.entity_id,
            **self.values,
            "event_time": self.event_time.isoformat() if self.event_time else None,
        }


def get_online_features(settings: Settings, entity: str, ids: Sequence[str]) -> list[EntityFeatures]:
    """Latest online features of the given entities (one Feast call for all ids)."""
    from pipelines.feast_io.store import feature_store

    domain = get_domain(settings.stream.domain)
    try:
        features = domain.entity(entity)
    except KeyError:
        known = ", ".join(f.entity for f in domain.entities)
        raise UnknownEntityTypeError(f"unknown entity {entity!r}; the domain declares: {known}") from None
    refs = [f"{features.feature_view}:{name}" for name in features.feature_names]
    response = feature_store(settings).get_online_features(
        features=refs, entity_rows=[{features.key_column: entity_id} for entity_id in ids]
    )
    table = response.to_dict(include_event_timestamps=True)
    results = []
    for i, entity_id in enumerate(ids):
        values = {name: table[name][i] for name in features.feature_names}
        stamps = [table.get(f"{name}__ts", [None] * len(ids))[i] for name in features.feature_names]
        event_time = max((_as_utc(s) for s in stamps if s is not None), default=None)
        found = any(value is not None for value in values.values())
        results.append(EntityFeatures(entity, entity_id, found, values, event_time if found else None))
    return results


def _as_utc(stamp: Any) -> datetime:
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if hasattr(stamp, "seconds"):  # protobuf Timestamp
        return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, UTC)
    return datetime.fromtimestamp(float(stamp), UTC)
