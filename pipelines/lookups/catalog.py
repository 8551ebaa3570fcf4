"""What can be looked up, read from Feast's registry: entities, their feature views and the feature services.

Lookups are keyed by *entity* (``card``, ``merchant``), while Feast reads *feature references*
(``view:feature``) for rows of *join keys*. The catalog translates between the two and turns every unknown name
into an error that lists what exists, before Feast is asked (Feast's own messages name the missing object but
not the alternatives). Built once per :class:`~pipelines.lookups.client.FeatureLookup` from the cached registry;
the client rebuilds it once when a name is unknown, in case the registry changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.lookups.errors import (
    AmbiguousFeatureSelectionError,
    UnknownEntityTypeError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class EntityCatalog:
    """One entity type: its join key and, per feature view keyed by it alone, the view's features in order."""

    name: str
    join_key: str
    views: dict[str, tuple[str, ...]]

    @property
    def feature_names(self) -> list[str]:
        return [name for features in self.views.values() for name in features]


@dataclass(frozen=True)
class FeatureSelection:
    """The Feast references one lookup reads, and the plain feature names they come back under, in order."""

    entity: EntityCatalog
    refs: tuple[str, ...]
    names: tuple[str, ...]
    feature_service: str | None


@dataclass(frozen=True)
class FeatureCatalog:
    entities: dict[str, EntityCatalog]
    services: dict[str, dict[str, tuple[str, ...]]]
    """Feature service -> view -> the service's features of that view."""

    @classmethod
    def from_store(cls, store: FeatureStore) -> FeatureCatalog:
        """Read the registry (cached by Feast; ``allow_cache`` avoids re-reading the file on every call)."""
        join_keys = {entity.name: entity.join_key for entity in store.list_entities(allow_cache=True)}
        views_by_entity: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in join_keys}
        for view in store.list_feature_views(allow_cache=True):
            if len(view.entities) == 1 and view.entities[0] in views_by_entity:
                views_by_entity[view.entities[0]][view.name] = tuple(feature.name for feature in view.features)
        services = {
            service.name: {
                projection.name: tuple(feature.name for feature in projection.features)
                for projection in service.feature_view_projections
            }
            for service in store.registry.list_feature_services(store.project, allow_cache=True)
        }
        entities = {
            name: EntityCatalog(name, join_keys[name], views) for name, views in views_by_entity.items() if views
        }
        return cls(entities, services)

    def entity(self, name: str) -> EntityCatalog:
        try:
            return self.entities[name]
        except KeyError:
            known = ", ".join(sorted(self.entities)) or "none (run `featurestream features apply`)"
            raise UnknownEntityTypeError(f"unknown entity {name!r}; entities with features: {known}") from None

    def select(
        self, entity: str, *, feature_service: str | None = None, features: Sequence[str] | None = None
    ) -> FeatureSelection:
        """The references for ``entity``: a service's features of that entity, named features, or all of them.

        Features may be plain names (``card_txn_count_1h``) or Feast references (``card_features:...``).
        """
        catalog = self.entity(entity)
        if feature_service is not None and features:
            raise AmbiguousFeatureSelectionError("give a feature service or feature names, not both")
        if feature_service is not None:
            return self._service_selection(catalog, feature_service)
        pairs = [(view, name) for view, names in catalog.views.items() for name in names]
        if features:
            pairs = [_resolve(catalog, requested) for requested in features]
        return FeatureSelection(
            catalog, tuple(f"{view}:{name}" for view, name in pairs), tuple(name for _, name in pairs), None
        )

    def _service_selection(self, catalog: EntityCatalog, service: str) -> FeatureSelection:
        try:
            projections = self.services[service]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise UnknownFeatureServiceError(
                f"unknown feature service {service!r}; feature services: {known}"
            ) from None
        pairs = [(view, name) for view, names in projections.items() if view in catalog.views for name in names]
        if not pairs:
            covered = sorted({e.name for e in self.entities.values() for view in projections if view in e.views})
            raise UnknownFeatureServiceError(
                f"feature service {service!r} has no {catalog.name} features; it covers: {', '.join(covered) or 'none'}"
            )
        return FeatureSelection(
            catalog, tuple(f"{view}:{name}" for view, name in pairs), tuple(name for _, name in pairs), service
        )


def _resolve(catalog: EntityCatalog, requested: str) -> tuple[str, str]:
    view, _, name = requested.rpartition(":")
    for candidate_view, names in catalog.views.items():
        if name in names and view in ("", candidate_view):
            return candidate_view, name
    raise UnknownFeatureError(
        f"{requested!r} is not a feature of {catalog.name}; its features: {', '.join(catalog.feature_names)}"
    )
