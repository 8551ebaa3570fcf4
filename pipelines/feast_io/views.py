"""What a writer needs to know about a feature view, as plain picklable data.

Writers run on Spark executors. Reading Feast's registry there would mean importing Feast and opening the registry
in every task; instead the driver reads the applied registry once (:func:`view_specs`) and ships these small
frozen dataclasses inside the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.feast_io.errors import UnknownFeatureViewError

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: str
    """Feast type name, ``str(feast.types.Float64)`` == "Float64"."""


@dataclass(frozen=True)
class ViewSpec:
    name: str
    online_table: str
    """The view's table in a SQL online store, ``<project>_<view>`` (Feast's ``compute_table_id``)."""
    join_keys: tuple[str, ...]
    join_key_types: tuple[str, ...]
    timestamp_field: str
    features: tuple[FeatureSpec, ...]

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def columns(self) -> list[str]:
        """The columns a writer needs in its rows: join keys, event time, features."""
        return [*self.join_keys, self.timestamp_field, *self.feature_names]


def view_specs(store: FeatureStore) -> dict[str, ViewSpec]:
    """Specs of every feature view in the store's registry (run `featurestream features apply` first)."""
    versioning = bool(getattr(store.config.registry, "enable_online_feature_view_versioning", False))
    return {
        view.name: view_spec(view, store.project, versioning) for view in store.list_feature_views(allow_cache=False)
    }


def view_spec(view: FeatureView, project: str, versioning: bool = False) -> ViewSpec:
    """The spec of one feature view (also used inside Feast's own write path, which hands us the view)."""
    from feast.infra.online_stores.helpers import compute_table_id

    source = view.batch_source
    return ViewSpec(
        name=view.name,
        online_table=compute_table_id(project, view, versioning),
        join_keys=tuple(column.name for column in view.entity_columns),
        join_key_types=tuple(str(column.dtype) for column in view.entity_columns),
        timestamp_field=source.timestamp_field if source is not None else "event_timestamp",
        features=tuple(FeatureSpec(feature.name, str(feature.dtype)) for feature in view.features),
    )


def spec_for(specs: dict[str, ViewSpec], view_name: str) -> ViewSpec:
    try:
        return specs[view_name]
    except KeyError:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownFeatureViewError(
            f"feature view {view_name!r} is not in the applied registry (known: {known}); "
            "run `featurestream features apply`"
        ) from None
