"""What a domain declares for the engine."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.transforms.windows import EntityFeatureSet


@dataclass(frozen=True)
class Domain:
    """A streaming domain: the event subject, its id and time columns, and per-entity features."""

    name: str
    event_subject: str
    event_id_column: str
    event_time_column: str
    entities: tuple[EntityFeatureSet, ...]

    def entity(self, name: str) -> EntityFeatureSet:
        for features in self.entities:
            if features.entity == name:
                return features
        raise KeyError(name)

    @property
    def feature_names(self) -> list[str]:
        return [name for features in self.entities for name in features.feature_names]

    @property
    def retention_ms(self) -> int:
        return max(features.retention_ms for features in self.entities)
