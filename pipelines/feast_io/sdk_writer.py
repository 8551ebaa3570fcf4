"""A guarded online writer through Feast's SDK, for stores this package has no atomic path for.

It reads the stored event times of the incoming entities (``get_online_features``), drops rows that are older,
and writes the rest with ``FeatureStore.write_to_online_store``. The read and the write are separate steps:
another writer may store a newer event in between, and this writer then overwrites it. That race is why the
SQLite store gets :class:`~pipelines.feast_io.sqlite_writer.SqliteOnlineWriter` instead, and why this writer
suits single-writer setups or stores that guard themselves: Feast's Redis store already skips an incoming row
whose event time is not newer than the stored one (nanosecond precision, read-then-write inside Feast too).
Event times read back from SQLite have whole-second precision, so on SQLite this guard is second-granular.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.config import Settings
from pipelines.feast_io.online import FeatureRows, OnlineWriter, WriteStats, latest_per_entity, normalized
from pipelines.feast_io.views import ViewSpec, spec_for, view_specs

if TYPE_CHECKING:
    from feast import FeatureStore

_NOT_STORED = np.iinfo(np.int64).min


class FeastSdkOnlineWriter(OnlineWriter):
    """Writes through ``FeatureStore.write_to_online_store`` after dropping rows older than the stored ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: FeatureStore | None = None
        self._specs: dict[str, ViewSpec] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The FeatureStore holds registry and store connections: rebuild it on the executor from settings.
        return {"settings": self.settings, "_store": None, "_specs": self._specs}

    def _feature_store(self) -> FeatureStore:
        if self._store is None:
            from pipelines.feast_io.store import feature_store

            self._store = feature_store(self.settings)
        return self._store

    def _spec(self, view_name: str) -> ViewSpec:
        if self._specs is None or view_name not in self._specs:
            self._specs = view_specs(self._feature_store())
        return spec_for(self._specs, view_name)

    def write(self, view_name: str, rows: FeatureRows) -> WriteStats:
        started = perf_counter()
        spec = self._spec(view_name)
        table = normalized(spec, rows)
        latest, event_us = latest_per_entity(spec, table)
        if latest.num_rows == 0:
            return WriteStats.measure(view_name, table.num_rows, 0, 0, started)
        stored_us = self.stored_event_micros(spec, latest)
        newer = event_us >= stored_us
        kept = latest.filter(pa.array(newer))
        if kept.num_rows:
            frame = kept.to_pandas()
            self._feature_store().write_to_online_store(view_name, frame)
        written = int(newer.sum())
        return WriteStats.measure(view_name, table.num_rows, latest.num_rows, written, started)

    def stored_event_micros(self, spec: ViewSpec, latest: pa.Table) -> np.ndarray:
        """The stored event time (UTC epoch µs) of each row's entity; the int64 minimum where none is stored."""
        entity_rows = latest.select(list(spec.join_keys)).to_pylist()
        response = self._feature_store().get_online_features(
            features=[f"{spec.name}:{name}" for name in spec.feature_names], entity_rows=entity_rows
        )
        proto = response.proto
        names = list(proto.metadata.feature_names.val)
        stored = np.full(latest.num_rows, _NOT_STORED, dtype=np.int64)
        for name in spec.feature_names:
            vector = proto.results[names.index(name)]
            for row, timestamp in enumerate(vector.event_timestamps):
                if timestamp.seconds or timestamp.nanos:
                    stored[row] = max(stored[row], timestamp.seconds * 1_000_000 + timestamp.nanos // 1_000)
        return stored
