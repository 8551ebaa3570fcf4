"""Feast's SQLite online store with the project's guard on writes: what Feast's feature server runs on.

``feast serve`` offers ``/push`` (and ``/write-to-online-store``), which write through the online store's
``online_write_batch``. Feast's SQLite store overwrites unconditionally, so a pushed row older than the stream's
latest would take the online value back in time. Naming this class as the online store type in the feature
server's ``feature_store.yaml`` (``type: pipelines.feast_io.guarded_store.GuardedSqliteOnlineStore``) routes
those writes through :class:`~pipelines.feast_io.sqlite_writer.SqliteOnlineWriter` instead: same tables and
bytes, same guard (an older event never replaces a newer one; equal times replace), same extra column. Reads are
Feast's own, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig

from pipelines.feast_io.sqlite_writer import SqliteOnlineWriter
from pipelines.feast_io.views import view_spec

GUARDED_SQLITE_TYPE = "pipelines.feast_io.guarded_store.GuardedSqliteOnlineStore"


class GuardedSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast finds a custom store's config as ``<class name>Config`` next to the class."""

    type: Literal["pipelines.feast_io.guarded_store.GuardedSqliteOnlineStore"] = GUARDED_SQLITE_TYPE  # type: ignore[assignment]


class GuardedSqliteOnlineStore(SqliteOnlineStore):
    """SqliteOnlineStore whose writes never go back in time (see the module docstring)."""

    def online_write_batch(
        self,
        config: Any,
        table: Any,
        data: list[tuple[Any, dict[str, Any], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        if data:
            versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
            spec = view_spec(table, config.project, versioning)
            writer = SqliteOnlineWriter(self._get_db_path(config), {spec.name: spec})
            writer.write(spec.name, rows_from_protos(spec.join_keys, spec.timestamp_field, spec.feature_names, data))
        if progress is not None:
            progress(len(data))


def rows_from_protos(
    join_keys: tuple[str, ...],
    timestamp_field: str,
    feature_names: list[str],
    data: list[tuple[Any, dict[str, Any], datetime, datetime | None]],
) -> pd.DataFrame:
    """Feast's (entity key, values, event time, created) protos as the plain rows the guarded writer takes."""
    from feast.type_map import feast_value_type_to_python_type

    records = []
    for entity_key, values, event_time, _created in data:
        keys = dict(zip(entity_key.join_keys, entity_key.entity_values, strict=True))
        record: dict[str, Any] = {key: feast_value_type_to_python_type(keys[key]) for key in join_keys}
        record[timestamp_field] = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
        for name in feature_names:
            value = values.get(name)
            record[name] = feast_value_type_to_python_type(value) if value is not None else None
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*join_keys, timestamp_field, *feature_names])
    frame[timestamp_field] = pd.to_datetime(frame[timestamp_field], utc=True)
    return frame
