"""Per-entity, per-event sliding-window features: declarations and the pure computation.

For an entity's event at time t, a windowed aggregate covers the entity's known events with event time in
(t - W, t], the event itself included. "Known" means already in the entity's history or in the same
micro-batch; among events with the very same timestamp, only those that arrived before it (and itself) count,
so the result never depends on how events are cut into micro-batches. With events in event-time order per
entity (Kafka keys by entity) that is every earlier event, which is what Feast's point-in-time join sees.

Nothing here imports Spark or Kafka: the streaming job hands each entity's history and new events to
:func:`compute_window_features` and stores the returned history in Spark's state store. Unit tests call it
with ten rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

Aggregation = Literal["count", "sum", "max", "mean", "count_distinct", "seconds_since_prev"]

_MS = 1000


@dataclass(frozen=True)
class WindowAggregate:
    """One feature: an aggregation of one column over a trailing event-time window."""

    name: str
    aggregation: Aggregation
    window: timedelta | None = None
    column: str | None = None
    dtype: Literal["int64", "float64"] = "float64"

    def __post_init__(self) -> None:
        needs_column = self.aggregation in ("sum", "max", "mean", "count_distinct")
        if needs_column and self.column is None:
            raise ValueError(f"{self.name}: {self.aggregation} needs a column")
        if self.aggregation != "seconds_since_prev" and self.window is None:
            raise ValueError(f"{self.name}: {self.aggregation} needs a window")

    @property
    def window_ms(self) -> int:
        return int(self.window.total_seconds() * _MS) if self.window is not None else 0


@dataclass(frozen=True)
class EntityFeatureSet:
    """The features one entity type (card, merchant, ...) gets for each of its events."""

    entity: str
    key_column: str
    feature_view: str
    aggregates: tuple[WindowAggregate, ...]
    numeric_columns: tuple[str, ...] = field(init=False)
    category_columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        numeric = [a.column for a in self.aggregates if a.aggregation in ("sum", "max", "mean") and a.column]
        category = [a.column for a in self.aggregates if a.aggregation == "count_distinct" and a.column]
        object.__setattr__(self, "numeric_columns", tuple(dict.fromkeys(numeric)))
        object.__setattr__(self, "category_columns", tuple(dict.fromkeys(category)))

    @property
    def feature_names(self) -> list[str]:
        return [a.name for a in self.aggregates]

    @property
    def retention_ms(self) -> int:
        """How far back an event's windows reach: older history can be forgotten."""
        return max(a.window_ms for a in self.aggregates)


@dataclass
class EntityHistory:
    """An entity's recent events, sorted by event time: what Spark's state store keeps per entity."""

    times_ms: np.ndarray
    numeric: dict[str, np.ndarray]
    categories: dict[str, np.ndarray]

    @classmethod
    def empty(cls, features: EntityFeatureSet) -> EntityHistory:
        return cls(
            times_ms=np.empty(0, dtype=np.int64),
            numeric={c: np.empty(0, dtype=np.float64) for c in features.numeric_columns},
            categories={c: np.empty(0, dtype=object) for c in features.category_columns},
        )

    def __len__(self) -> int:
        return len(self.times_ms)

    @property
    def latest_ms(self) -> int | None:
        return int(self.times_ms[-1]) if len(self.times_ms) else None

    def pruned(self, horizon_ms: int) -> EntityHistory:
        """Drop events at or before the horizon, but always keep the latest (for seconds_since_prev)."""
        if not len(self):
            return self
        keep_from = int(np.searchsorted(self.times_ms, horizon_ms, side="right"))
        keep_from = min(keep_from, len(self) - 1)
        return EntityHistory(
            times_ms=self.times_ms[keep_from:],
            numeric={c: v[keep_from:] for c, v in self.numeric.items()},
            categories={c: v[keep_from:] for c, v in self.categories.items()},
        )


def compute_window_features(
    features: EntityFeatureSet, history: EntityHistory, events: pd.DataFrame
) -> tuple[pd.DataFrame, EntityHistory]:
    """Features for each row of ``events`` (same order) and the history that includes them.

    ``events`` holds ``event_time_ms`` (int64) and the columns the aggregates read. The returned history is
    not pruned; the caller prunes it against the watermark.
    """
    new_times = events["event_time_ms"].to_numpy(dtype=np.int64)
    times = np.concatenate([history.times_ms, new_times])
    order = np.argsort(times, kind="stable")
    times = times[order]
    numeric = {
        c: np.concatenate([history.numeric[c], events[c].to_numpy(dtype=np.float64)])[order]
        for c in features.numeric_columns
    }
    categories = {
        c: np.concatenate([history.categories[c], events[c].to_numpy(dtype=object)])[order]
        for c in features.category_columns
    }
    # The stable sort keeps history before the batch and the batch in arrival order among equal times, so an
    # event's own position bounds its window: everything earlier in time, and ties that arrived before it.
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    new_positions = position[len(history) :]
    upper = new_positions + 1
    columns: dict[str, np.ndarray] = {}
    for aggregate in features.aggregates:
        if aggregate.aggregation == "seconds_since_prev":
            columns[aggregate.name] = _seconds_since_previous(times, new_times, new_positions)
            continue
        lower = np.searchsorted(times, new_times - aggregate.window_ms, side="right")
        count = upper - lower
        if aggregate.aggregation == "count":
            columns[aggregate.name] = count.astype(np.int64)
            continue
        assert aggregate.column is not None
        if aggregate.aggregation == "count_distinct":
            values = categories[aggregate.column]
            columns[aggregate.name] = np.fromiter(
                (len(set(values[lo:hi])) for lo, hi in zip(lower, upper, strict=True)),
                dtype=np.int64,
                count=len(lower),
            )
            continue
        values = numeric[aggregate.column]
        if aggregate.aggregation == "max":
            columns[aggregate.name] = _range_max(values, lower, upper)
            continue
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        window_sum = cumulative[upper] - cumulative[lower]
        columns[aggregate.name] = window_sum if aggregate.aggregation == "sum" else window_sum / count

    frame = pd.DataFrame(columns, index=events.index)
    updated = EntityHistory(times_ms=times, numeric=numeric, categories=categories)
    return frame, updated


def _seconds_since_previous(times: np.ndarray, new_times: np.ndarray, new_positions: np.ndarray) -> np.ndarray:
    """Seconds from the event just before this one in (time, arrival) order; NaN when there is none."""
    candidate = new_positions - 1
    result = np.full(len(new_times), np.nan)
    has_previous = candidate >= 0
    result[has_previous] = (new_times[has_previous] - times[candidate[has_previous]]) / _MS
    return result


def _range_max(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) for each (lo, hi) with lo < hi, vectorised with ufunc.reduceat."""
    if not len(lower):
        return np.empty(0, dtype=np.float64)
    padded = np.append(values, -np.inf)  # reduceat indices must be < len; the pad is never inside a window
    bounds = np.empty(2 * len(lower), dtype=np.int64)
    bounds[0::2] = lower
    bounds[1::2] = upper
    return np.maximum.reduceat(padded, bounds)[0::2]


def features_frame_columns(feature_sets: Sequence[EntityFeatureSet]) -> list[WindowAggregate]:
    """Every aggregate of every entity, in declaration order (the union the stream emits)."""
    return [aggregate for features in feature_sets for aggregate in features.aggregates]
