"""The online writer interface, and the row preparation every implementation shares.

A writer receives one Spark partition's rows for one feature view (join key, event time, features), usually
already reduced by Spark to each entity's latest event. It keeps, per entity, only the row with the greatest
event time (again: a partition may still hold several rows per entity, and being wrong here would let an older
event win) and writes it unless the store already holds a newer event for that entity: online values never go
back in time, and replaying a batch changes nothing.

Writers run on Spark executors, so they are plain picklable objects that open their connections inside
:meth:`OnlineWriter.write` and close them before returning.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.feast_io.errors import FeatureRowsError
from pipelines.feast_io.views import ViewSpec

FeatureRows: TypeAlias = pa.Table | pd.DataFrame

ARROW_TYPES: dict[str, pa.DataType] = {
    "Float64": pa.float64(),
    "Float32": pa.float32(),
    "Int64": pa.int64(),
    "Int32": pa.int32(),
    "Bool": pa.bool_(),
    "String": pa.string(),
}
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True)
class WriteStats:
    """What one write did. ``written + stale == entities``; replays show up as ``written`` (same values again)."""

    view: str
    rows: int
    """Rows handed in."""
    entities: int
    """Distinct entities after keeping each one's latest row."""
    written: int
    """Entities whose stored values were created or replaced (the stored event was not newer)."""
    stale: int
    """Entities left alone because the store already holds a newer event for them."""
    seconds: float

    @classmethod
    def measure(cls, view: str, rows: int, entities: int, written: int, started: float) -> WriteStats:
        """Stats of a write that began at ``started`` (a ``time.perf_counter()`` reading)."""
        return cls(view, rows, entities, written, entities - written, time.perf_counter() - started)


class OnlineWriter(ABC):
    """Writes each entity's latest features to the online store, never over a newer event's values."""

    @abstractmethod
    def write(self, view_name: str, rows: FeatureRows) -> WriteStats:
        """Write ``rows`` (join key, event time and feature columns of ``view_name``; other columns are ignored)."""

    def write_batches(self, view_name: str, batches: Iterable[pa.RecordBatch]) -> WriteStats:
        """Write a partition given as Arrow record batches (``mapInArrow``) in one go: one connection, one commit."""
        collected = list(batches)
        if not collected:  # an empty partition sends no batch at all, hence no schema to build a table from
            return WriteStats(view_name, 0, 0, 0, 0, 0.0)
        return self.write(view_name, pa.Table.from_batches(collected))


def as_arrow(rows: FeatureRows) -> pa.Table:
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, preserve_index=False)
    return rows


def _epoch_micros(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Event times as UTC epoch microseconds; timestamps without a zone are taken as UTC (Spark's arrow output)."""
    if not pa.types.is_timestamp(column.type):
        raise FeatureRowsError(f"event time column {name!r} must be a timestamp, not {column.type}")
    raw = np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    unit = column.type.unit
    return raw // 1_000 if unit == "ns" else raw * _MICROS_PER_UNIT[unit]


def normalized(spec: ViewSpec, rows: FeatureRows) -> pa.Table:
    """The view's columns only, features cast to their declared types; rejects missing columns and null keys."""
    table = as_arrow(rows)
    missing = [column for column in spec.columns if column not in table.column_names]
    if missing:
        raise FeatureRowsError(f"rows for feature view {spec.name!r} lack column(s) {', '.join(missing)}")
    table = table.select(spec.columns)
    for column in [*spec.join_keys, spec.timestamp_field]:
        if table.column(column).null_count:
            raise FeatureRowsError(f"rows for feature view {spec.name!r} have a null {column}")
    for feature in spec.features:
        target = ARROW_TYPES.get(feature.dtype)
        if target is None or table.column(feature.name).type == target:
            continue
        try:
            casted = pc.cast(table.column(feature.name), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise FeatureRowsError(f"feature {feature.name!r} does not fit {feature.dtype}: {exc}") from exc
        table = table.set_column(table.schema.get_field_index(feature.name), feature.name, casted)
    return table


def latest_per_entity(spec: ViewSpec, table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Each entity's row with the greatest event time (the last such row on ties), and those event times in µs.

    The result is ordered by entity, not by input position.
    """
    event_us = _epoch_micros(table.column(spec.timestamp_field), spec.timestamp_field)
    if table.num_rows == 0:
        return table, event_us
    codes = [
        np.asarray(pc.dictionary_encode(table.column(key).combine_chunks()).indices, dtype=np.int64)
        for key in spec.join_keys
    ]
    # np.lexsort sorts by its last key first: entity codes, then event time, then input position.
    order = np.lexsort((np.arange(table.num_rows), event_us, *reversed(codes)))
    same_entity_as_next = np.ones(len(order) - 1, dtype=bool)
    for key_codes in codes:
        sorted_codes = key_codes[order]
        same_entity_as_next &= sorted_codes[1:] == sorted_codes[:-1]
    keep = order[np.append(~same_entity_as_next, True)]
    return table.take(pa.array(keep)), event_us[keep]
