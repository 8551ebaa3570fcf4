"""Per-entity, per-event sliding-window features: declarations and the pure, vectorised computation.

For an entity's event at time t, a windowed aggregate covers the entity's known events with event time in
(t - W, t], the event itself included. "Known" means already in the entity's history or in the same
micro-batch; among events with the very same timestamp, only those that arrived before it (and itself) count,
so the result never depends on how events are cut into micro-batches. With events in event-time order per
entity (Kafka keys by entity) that is every earlier event, which is what Feast's point-in-time join sees.

One call handles many entities of one type at once (a state bucket): events are sorted by (entity, time) and
every window becomes a pair of ``searchsorted`` bounds, so the cost is per event, not per entity. Nothing here
imports Spark or Kafka; unit tests call it with ten rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

Aggregation = Literal["count", "sum", "max", "mean", "count_distinct", "seconds_since_prev"]

_MS = 1000
IS_LATEST = "is_latest_in_batch"


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
    """Recent events of a set of entities (one state bucket), sorted by (entity, event time)."""

    keys: np.ndarray
    times_ms: np.ndarray
    numeric: dict[str, np.ndarray]
    categories: dict[str, np.ndarray]

    @classmethod
    def empty(cls, features: EntityFeatureSet) -> EntityHistory:
        return cls(
            keys=np.empty(0, dtype=object),
            times_ms=np.empty(0, dtype=np.int64),
            numeric={c: np.empty(0, dtype=np.float64) for c in features.numeric_columns},
            categories={c: np.empty(0, dtype=object) for c in features.category_columns},
        )

    def __len__(self) -> int:
        return len(self.times_ms)

    def take(self, index: np.ndarray) -> EntityHistory:
        return EntityHistory(
            keys=self.keys[index],
            times_ms=self.times_ms[index],
            numeric={c: v[index] for c, v in self.numeric.items()},
            categories={c: v[index] for c, v in self.categories.items()},
        )

    def pruned(self, horizon_ms: int, forget_before_ms: int | None = None) -> EntityHistory:
        """Drop events at or before ``horizon_ms`` except each entity's latest (kept for seconds_since_prev);
        drop entities whose latest event is at or before ``forget_before_ms`` altogether."""
        if not len(self):
            return self
        latest = _last_of_each_run(self.keys)
        keep = (self.times_ms > horizon_ms) | latest
        if forget_before_ms is not None:
            latest_time = _broadcast_run_last(self.keys, self.times_ms)
            keep &= latest_time > forget_before_ms
        return self.take(np.flatnonzero(keep))


def compute_window_features(
    features: EntityFeatureSet, history: EntityHistory, events: pd.DataFrame
) -> tuple[pd.DataFrame, EntityHistory]:
    """Features for each row of ``events`` (same order) and the history that now includes them.

    ``events`` holds the entity key column, ``event_time_ms`` (int64) and the columns the aggregates read.
    The result also has ``is_latest_in_batch``: True on each entity's last event of this call, the row the
    online store should hold. The returned history is not pruned; the caller prunes it against the watermark.
    """
    new_keys = events[features.key_column].to_numpy(dtype=object)
    new_times = events["event_time_ms"].to_numpy(dtype=np.int64)
    keys = np.concatenate([history.keys, new_keys])
    times = np.concatenate([history.times_ms, new_times])
    codes, _ = pd.factorize(keys)
    # Stable: history before the batch and the batch in arrival order among equal (entity, time).
    order = np.lexsort((times, codes))
    codes, times, keys = codes[order], times[order], keys[order]
    numeric = {
        c: np.concatenate([history.numeric[c], events[c].to_numpy(dtype=np.float64)])[order]
        for c in features.numeric_columns
    }
    categories = {
        c: np.concatenate([history.categories[c], events[c].to_numpy(dtype=object)])[order]
        for c in features.category_columns
    }
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    new_positions = position[len(history) :]
    new_codes = codes[new_positions]
    entity_start = np.searchsorted(codes, new_codes, side="left")
    # An event's own position bounds its window: earlier times, and equal times that arrived before it.
    upper = new_positions + 1
    origin = int(times.min()) if len(times) else 0
    span = (int(times.max()) - origin + 1) if len(times) else 1
    composite = codes.astype(np.int64) * span + (times - origin)

    columns: dict[str, np.ndarray] = {}
    for aggregate in features.aggregates:
        if aggregate.aggregation == "seconds_since_prev":
            previous = new_positions - 1
            result = np.full(len(new_times), np.nan)
            has_previous = previous >= entity_start
            result[has_previous] = (new_times[has_previous] - times[previous[has_previous]]) / _MS
            columns[aggregate.name] = result
            continue
        bound = new_codes.astype(np.int64) * span + (new_times - aggregate.window_ms - origin)
        lower = np.maximum(np.searchsorted(composite, bound, side="right"), entity_start)
        count = upper - lower
        if aggregate.aggregation == "count":
            columns[aggregate.name] = count.astype(np.int64)
            continue
        assert aggregate.column is not None
        if aggregate.aggregation == "count_distinct":
            columns[aggregate.name] = _distinct_in_windows(categories[aggregate.column], lower, upper)
            continue
        values = numeric[aggregate.column]
        if aggregate.aggregation == "max":
            columns[aggregate.name] = _range_max(values, lower, upper)
            continue
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        window_sum = cumulative[upper] - cumulative[lower]
        columns[aggregate.name] = window_sum if aggregate.aggregation == "sum" else window_sum / count

    # The latest event of the batch per entity is the new event with the highest sorted position.
    last_new = pd.Series(new_positions).groupby(new_codes).transform("max").to_numpy()
    columns[IS_LATEST] = new_positions == last_new
    frame = pd.DataFrame(columns, index=events.index)
    updated = EntityHistory(keys=keys, times_ms=times, numeric=numeric, categories=categories)
    return frame, updated


def _last_of_each_run(keys: np.ndarray) -> np.ndarray:
    """True where the next element belongs to another entity (keys are grouped)."""
    last = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        last[:-1] = keys[:-1] != keys[1:]
    return last


def _broadcast_run_last(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each element, the value at the last element of its entity's run."""
    last_index = np.flatnonzero(_last_of_each_run(keys))
    run_of = np.searchsorted(last_index, np.arange(len(keys)), side="left")
    return values[last_index[run_of]]


def _distinct_in_windows(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """len(set(values[lo:hi])) for each (lo, hi) with lo < hi.

    Two ways, whichever costs less. A Python set per window costs ~0.05 µs per window element; it was a tenth of
    the Python workers' time with scoring in large batches (py-spy, 2026-12-06). The vectorised count factorises
    and sorts every held value first (~0.16 µs each): in a real-time stream's small batches, few windows over a
    large history, that costs more than the sets (35 vs 23 ms per bucket call measured, 75,000 held, 900 new).
    """
    lengths = upper - lower
    if int(lengths.sum()) < _SETS_CHEAPER_BELOW * len(values):
        return np.fromiter(
            (len(set(values[lo:hi])) for lo, hi in zip(lower, upper, strict=True)), dtype=np.int64, count=len(lower)
        )
    return _first_occurrences_in_windows(values, lower, lengths)


_SETS_CHEAPER_BELOW = 3
"""Window elements per held value under which the Python sets are cheaper (the ratio of the costs above)."""


def _first_occurrences_in_windows(values: np.ndarray, lower: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The vectorised count: position j counts in [lo, lo + length) iff the previous position holding the same
    value is before lo. Each step looks at the j-th position of every window still that long, so the loop's
    work is the total of the window lengths, in numpy."""
    distinct = np.zeros(len(lower), dtype=np.int64)
    value_codes, _ = pd.factorize(values, use_na_sentinel=False)  # None is a value of its own, as in a set
    by_value = np.argsort(value_codes, kind="stable")  # positions ascending within each value
    same_value = value_codes[by_value[1:]] == value_codes[by_value[:-1]]
    previous_same = np.full(len(values), -1, dtype=np.int64)
    previous_same[by_value[1:][same_value]] = by_value[:-1][same_value]
    pending = np.flatnonzero(lengths > 0)
    step = 0
    while pending.size:
        starts = lower[pending]
        distinct[pending] += previous_same[starts + step] < starts
        step += 1
        pending = pending[lengths[pending] > step]
    return distinct


def _range_max(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) for each (lo, hi) with lo < hi, vectorised with ufunc.reduceat."""
    if not len(lower):
        return np.empty(0, dtype=np.float64)
    padded = np.append(values, -np.inf)  # reduceat indices must be < len; the pad is never inside a window
    bounds = np.empty(2 * len(lower), dtype=np.int64)
    bounds[0::2] = lower
    bounds[1::2] = upper
    return np.maximum.reduceat(padded, bounds)[0::2]
