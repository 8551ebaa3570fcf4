"""Per-entity, per-event sliding-window features: declarations and the pure, vectorised computation.

For an entity's event at time t, a windowed aggregate covers the entity's known events with event time in
(t - W, t], the event itself included. "Known" means already in the entity's history or in the same
micro-batch; among events with the very same timestamp, only those that arrived before it (and itself) count,
so the result never depends on how events are cut into micro-batches. With events in event-time order per
entity (Kafka keys by entity) that is every earlier event, which is what Feast's point-in-time join sees.

One call handles many entities of one type at once (a state bucket): the batch's events are merged into the
bucket's history, which is kept in (entity, time) order with entity ids and categories as integer codes, and
every window becomes a pair of ``searchsorted`` bounds. The cost is per event, not per entity; what grows with
the held history is copying arrays, not touching a Python object per held event, and not sorting it (except the
scanning distinct count, chosen only when a batch's windows together span the history several times over).
Nothing here imports Spark or Kafka; unit tests call it with ten rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


@dataclass(frozen=True)
class CodedStrings:
    """A string column as codes into a dictionary of its distinct values (code -1 is null).

    A state bucket holds each entity id and category once, in the dictionary; a held event costs one integer.
    Merging a batch into the history then works on integers: no Python string per held event is built, hashed
    or compared (that was most of the stateful stage's per-batch cost as its state grew, py-spy, 2026-12-06).
    """

    codes: np.ndarray
    """int64, one per row; -1 for null."""
    dictionary: pa.Array
    """Distinct strings (``pa.string()``), in no particular order."""

    @classmethod
    def empty(cls) -> CodedStrings:
        return cls(np.empty(0, dtype=np.int64), pa.array([], type=pa.string()))

    @classmethod
    def from_values(cls, values: np.ndarray | Sequence[str | None]) -> CodedStrings:
        codes, dictionary = cls.empty().codes_for(np.asarray(values, dtype=object))
        return cls(codes, dictionary)

    def __len__(self) -> int:
        return len(self.codes)

    def values(self) -> np.ndarray:
        """The strings themselves, as an object array (``None`` for null)."""
        lookup = np.array([*self.dictionary.to_pylist(), None], dtype=object)
        return lookup[self.codes]  # -1 picks the appended None

    def take(self, index: np.ndarray) -> CodedStrings:
        return CodedStrings(self.codes[index], self.dictionary)

    def run_starts(self) -> np.ndarray:
        """True where a run of equal values begins."""
        return _run_starts(self.codes)

    def codes_for(self, values: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """Codes of ``values`` (nulls -1) in this dictionary, extended by the values it lacks; and that dictionary."""
        array = pa.array(values, type=pa.string(), from_pandas=True)
        found = pc.index_in(array, value_set=self.dictionary)
        dictionary = self.dictionary
        unseen = pc.and_(pc.is_null(found), pc.is_valid(array))
        if pc.any(unseen).as_py():
            dictionary = pa.concat_arrays([dictionary, pc.unique(array.filter(unseen))])
            found = pc.index_in(array, value_set=dictionary)
        return found.fill_null(-1).to_numpy().astype(np.int64, copy=False), dictionary

    def compacted(self) -> CodedStrings:
        """The same strings without dictionary entries no row uses any more (forgotten entities, old categories)."""
        used = np.zeros(len(self.dictionary), dtype=bool)
        used[self.codes[self.codes >= 0]] = True
        if used.all():
            return self
        renumbered = np.cumsum(used) - 1
        codes = np.where(self.codes >= 0, renumbered[np.maximum(self.codes, 0)], -1)
        return CodedStrings(codes, self.dictionary.filter(pa.array(used)))


@dataclass
class EntityHistory:
    """Recent events of a set of entities (one state bucket): each entity's events are contiguous (a run), in
    event-time order, equal times in arrival order. Runs are in no particular order."""

    keys: CodedStrings
    times_ms: np.ndarray
    numeric: dict[str, np.ndarray]
    categories: dict[str, CodedStrings]

    @classmethod
    def empty(cls, features: EntityFeatureSet) -> EntityHistory:
        return cls(
            keys=CodedStrings.empty(),
            times_ms=np.empty(0, dtype=np.int64),
            numeric={c: np.empty(0, dtype=np.float64) for c in features.numeric_columns},
            categories={c: CodedStrings.empty() for c in features.category_columns},
        )

    @classmethod
    def from_values(
        cls,
        keys: np.ndarray | Sequence[str],
        times_ms: np.ndarray,
        numeric: dict[str, np.ndarray],
        categories: dict[str, np.ndarray | Sequence[str | None]],
    ) -> EntityHistory:
        """A history from plain values (already grouped by entity and in time order within each)."""
        return cls(
            keys=CodedStrings.from_values(keys),
            times_ms=np.asarray(times_ms, dtype=np.int64),
            numeric={c: np.asarray(v, dtype=np.float64) for c, v in numeric.items()},
            categories={c: CodedStrings.from_values(v) for c, v in categories.items()},
        )

    def __len__(self) -> int:
        return len(self.times_ms)

    def take(self, index: np.ndarray) -> EntityHistory:
        return EntityHistory(
            keys=self.keys.take(index),
            times_ms=self.times_ms[index],
            numeric={c: v[index] for c, v in self.numeric.items()},
            categories={c: v.take(index) for c, v in self.categories.items()},
        )

    def pruned(self, horizon_ms: int, forget_before_ms: int | None = None) -> EntityHistory:
        """Drop events at or before ``horizon_ms`` except each entity's latest (kept for seconds_since_prev);
        drop entities whose latest event is at or before ``forget_before_ms`` altogether. Strings no event uses
        any more leave the dictionaries.

        Past the first window-length of a stream every batch prunes, so this runs over the whole held history
        each batch: it works per run (entity) where it can, and recodes the entity keys only when an entity was
        forgotten (a card bucket of 741,666 held events: 22-33 -> 8-13 ms)."""
        if not len(self) or self.times_ms.min() > max(
            horizon_ms, -(2**63) if forget_before_ms is None else forget_before_ms
        ):
            return self  # nothing to drop: skips the per-run scans (a real-time stream's first window-length)
        last_of_run = _last_of_each_run(self.keys.codes)
        keep = (self.times_ms > horizon_ms) | last_of_run
        forgotten = False
        if forget_before_ms is not None:
            last_index = np.flatnonzero(last_of_run)
            run_kept = self.times_ms[last_index] > forget_before_ms
            if not run_kept.all():
                forgotten = True
                keep &= np.repeat(run_kept, np.diff(last_index, prepend=-1))
        kept = self if keep.all() else self.take(np.flatnonzero(keep))
        # Horizon pruning keeps every entity's latest event, so its key stays in use: only forgetting frees keys.
        keys = kept.keys.compacted() if forgotten else kept.keys
        return EntityHistory(
            keys=keys,
            times_ms=kept.times_ms,
            numeric=kept.numeric,
            categories={c: v.compacted() for c, v in kept.categories.items()},
        )

    @classmethod
    def concatenated(cls, features: EntityFeatureSet, parts: Sequence[EntityHistory]) -> EntityHistory:
        """One history of the events of ``parts``, each a history, listed in arrival order (every event of a
        part arrived after those of the parts before it): equal (entity, time) events keep that order, so the
        result is the history that merging the parts one after another would have built, runs aside.

        The first part is usually the large one (a compacted state) and keeps its place: the others are sorted
        together and inserted into it, so the large part is copied once and never sorted."""
        if not parts:
            return cls.empty(features)
        first, *later = parts
        if not later:
            return first
        keys = _concatenated_strings([p.keys for p in later])
        times_ms = np.concatenate([p.times_ms for p in later])
        unsorted = cls(
            keys=keys,
            times_ms=times_ms,
            numeric={c: np.concatenate([p.numeric[c] for p in later]) for c in features.numeric_columns},
            categories={c: _concatenated_strings([p.categories[c] for p in later]) for c in features.category_columns},
        )
        return first.appended(unsorted.in_entity_time_order())

    def in_entity_time_order(self) -> EntityHistory:
        """These events grouped by entity (runs in code order), in time order within each, equal times in their
        present order (``lexsort`` is stable): a valid history from events in arrival order."""
        return self.take(np.lexsort((self.times_ms, self.keys.codes)))

    def appended(self, later: EntityHistory) -> EntityHistory:
        """This history with ``later``'s events merged in as having arrived after all of this one's."""
        key_codes, key_dictionary = _recoded(self.keys, later.keys)
        merge = _Merge.plan(self.keys, self.times_ms, key_codes, later.times_ms)
        categories = {}
        for c, held in self.categories.items():
            codes, dictionary = _recoded(held, later.categories[c])
            categories[c] = CodedStrings(merge.merged(held.codes, codes), dictionary)
        return EntityHistory(
            keys=CodedStrings(merge.merged(self.keys.codes, key_codes), key_dictionary),
            times_ms=merge.merged(self.times_ms, later.times_ms),
            numeric={c: merge.merged(v, later.numeric[c]) for c, v in self.numeric.items()},
            categories=categories,
        )


def _recoded(held: CodedStrings, later: CodedStrings) -> tuple[np.ndarray, pa.Array]:
    """``later``'s codes in ``held``'s dictionary, extended by the strings it lacks; and that dictionary. Only
    ``later``'s distinct strings are looked up."""
    codes_of_entries, dictionary = held.codes_for(later.dictionary.to_numpy(zero_copy_only=False))
    return np.append(codes_of_entries, -1)[later.codes], dictionary


def events_history(features: EntityFeatureSet, events: pd.DataFrame) -> EntityHistory:
    """``events`` (the columns :func:`compute_window_features` reads) as a history of their own: grouped by
    entity, in time order within each, equal times in arrival order."""
    keys = CodedStrings.from_values(events[features.key_column].to_numpy(dtype=object))
    if (keys.codes < 0).any():
        raise ValueError(f"events without a {features.key_column} cannot have {features.entity} features")
    arrived = EntityHistory(
        keys=keys,
        times_ms=events["event_time_ms"].to_numpy(dtype=np.int64),
        numeric={c: events[c].to_numpy(dtype=np.float64) for c in features.numeric_columns},
        categories={c: CodedStrings.from_values(events[c].to_numpy(dtype=object)) for c in features.category_columns},
    )
    return arrived.in_entity_time_order()


def _concatenated_strings(parts: Sequence[CodedStrings]) -> CodedStrings:
    """The parts' rows one after another, recoded into one dictionary of their distinct strings."""
    dictionary = pc.unique(pa.concat_arrays([p.dictionary.cast(pa.string()) for p in parts]))
    recoded = []
    for part in parts:
        to_shared = pc.index_in(part.dictionary, value_set=dictionary).to_numpy(zero_copy_only=False)
        recoded.append(np.append(to_shared.astype(np.int64), -1)[part.codes])  # code -1 (null) picks the -1
    return CodedStrings(np.concatenate(recoded), dictionary)


@dataclass(frozen=True)
class _Merge:
    """Where a batch's events go in the history: the history stays in place, each event is inserted after its
    entity's events with an earlier or equal time (so a history event precedes a batch event of the same time,
    and batch events of the same entity and time keep their arrival order).

    Sorting the key (run rank, time) of the batch alone and binary-searching it in the history, which is
    already in that order, costs O(batch log held) plus copying: the history is never re-sorted.
    """

    order: np.ndarray
    """The batch's events sorted by (run rank, time), stable."""
    insert_at: np.ndarray
    """For each event in ``order``: the history position it is inserted before."""
    positions: np.ndarray
    """Each event's position in the merged arrays, in the batch's own order."""
    composite: np.ndarray
    """The merged (run rank, time) key, as ``rank * span + time - origin``: ascending."""
    batch_rank: np.ndarray
    span: int
    origin: int

    @classmethod
    def plan(cls, held_keys: CodedStrings, held_times: np.ndarray, codes: np.ndarray, times: np.ndarray) -> _Merge:
        """``held_keys`` and ``held_times`` are the history's (runs of entities, time-ordered within each);
        ``codes`` and ``times`` the batch's, in arrival order."""
        held_codes = held_keys.codes
        run_starts = held_keys.run_starts()
        held_rank = np.cumsum(run_starts) - 1
        runs = int(run_starts.sum())
        rank_of_code = np.full(int(max(held_codes.max(initial=-1), codes.max(initial=-1))) + 1, -1, dtype=np.int64)
        rank_of_code[held_codes[run_starts]] = np.arange(runs)
        unranked = np.unique(codes[rank_of_code[codes] < 0])  # entities new to the bucket rank after the held
        rank_of_code[unranked] = runs + np.arange(len(unranked))
        batch_rank = rank_of_code[codes]
        every_time = np.concatenate([held_times, times])
        origin = int(every_time.min()) if len(every_time) else 0
        span = int(every_time.max()) - origin + 1 if len(every_time) else 1
        held_composite = held_rank * span + (held_times - origin)
        batch_composite = batch_rank * span + (times - origin)
        order = np.argsort(batch_composite, kind="stable")
        insert_at = np.searchsorted(held_composite, batch_composite[order], side="right")
        positions = np.empty(len(order), dtype=np.int64)
        positions[order] = insert_at + np.arange(len(order))
        composite = np.insert(held_composite, insert_at, batch_composite[order])
        return cls(order, insert_at, positions, composite, batch_rank, span, origin)

    def merged(self, held: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """One column of the merged history: ``held`` with ``batch``'s values inserted."""
        return np.insert(held, self.insert_at, batch[self.order])


def compute_window_features(
    features: EntityFeatureSet, history: EntityHistory, events: pd.DataFrame
) -> tuple[pd.DataFrame, EntityHistory]:
    """Features for each row of ``events`` (same order) and the history that now includes them.

    ``events`` holds the entity key column, ``event_time_ms`` (int64) and the columns the aggregates read.
    The result also has ``is_latest_in_batch``: True on each entity's last event of this call, the row the
    online store should hold. The returned history is not pruned; the caller prunes it against the watermark.
    """
    new_codes, key_dictionary = history.keys.codes_for(events[features.key_column].to_numpy(dtype=object))
    if (new_codes < 0).any():
        raise ValueError(f"events without a {features.key_column} cannot have {features.entity} features")
    new_times = events["event_time_ms"].to_numpy(dtype=np.int64)
    merge = _Merge.plan(history.keys, history.times_ms, new_codes, new_times)
    times = merge.merged(history.times_ms, new_times)
    numeric = {
        c: merge.merged(history.numeric[c], events[c].to_numpy(dtype=np.float64)) for c in features.numeric_columns
    }
    categories = {}
    for c in features.category_columns:
        held = history.categories[c]
        codes, dictionary = held.codes_for(events[c].to_numpy(dtype=object))
        categories[c] = CodedStrings(merge.merged(held.codes, codes), dictionary)
    new_positions = merge.positions
    run_key = merge.batch_rank * merge.span
    entity_start = np.searchsorted(merge.composite, run_key, side="left")
    # An event's own position bounds its window: earlier times, and equal times that arrived before it.
    upper = new_positions + 1

    columns: dict[str, np.ndarray] = {}
    cumulative_sums: dict[str, np.ndarray] = {}  # per column, shared by its sums and means
    lower_bounds: dict[int, np.ndarray] = {}  # per window length, shared by its aggregates
    gathered: dict[int, _WindowElements | None] = {}  # per window length, shared by its max and distinct count
    for aggregate in features.aggregates:
        if aggregate.aggregation == "seconds_since_prev":
            previous = new_positions - 1
            result = np.full(len(new_times), np.nan)
            has_previous = previous >= entity_start
            result[has_previous] = (new_times[has_previous] - times[previous[has_previous]]) / _MS
            columns[aggregate.name] = result
            continue
        if aggregate.window_ms not in lower_bounds:
            bound = run_key + (new_times - aggregate.window_ms - merge.origin)
            lower_bounds[aggregate.window_ms] = np.maximum(
                np.searchsorted(merge.composite, bound, side="right"), entity_start
            )
        lower = lower_bounds[aggregate.window_ms]
        count = upper - lower
        if aggregate.aggregation == "count":
            columns[aggregate.name] = count.astype(np.int64)
            continue
        assert aggregate.column is not None
        if aggregate.aggregation in ("count_distinct", "max") and aggregate.window_ms not in gathered:
            gathered[aggregate.window_ms] = _WindowElements.if_cheaper(lower, count, len(times))
        if aggregate.aggregation == "count_distinct":
            codes = categories[aggregate.column].codes
            columns[aggregate.name] = _distinct_in_windows(codes, lower, upper, gathered[aggregate.window_ms])
            continue
        values = numeric[aggregate.column]
        if aggregate.aggregation == "max":
            columns[aggregate.name] = _range_max(values, lower, upper, gathered[aggregate.window_ms])
            continue
        if aggregate.column not in cumulative_sums:
            cumulative_sums[aggregate.column] = np.concatenate([[0.0], np.cumsum(values)])
        cumulative = cumulative_sums[aggregate.column]
        window_sum = cumulative[upper] - cumulative[lower]
        columns[aggregate.name] = window_sum if aggregate.aggregation == "sum" else window_sum / count

    # The latest event of the batch per entity is the new event with the highest merged position.
    last_new = pd.Series(new_positions).groupby(new_codes).transform("max").to_numpy()
    columns[IS_LATEST] = new_positions == last_new
    frame = pd.DataFrame(columns, index=events.index)
    keys = CodedStrings(merge.merged(history.keys.codes, new_codes), key_dictionary)
    updated = EntityHistory(keys=keys, times_ms=times, numeric=numeric, categories=categories)
    return frame, updated


def _run_starts(codes: np.ndarray) -> np.ndarray:
    """True where a run of equal codes begins."""
    starts = np.ones(len(codes), dtype=bool)
    if len(codes) > 1:
        starts[1:] = codes[1:] != codes[:-1]
    return starts


def _last_of_each_run(codes: np.ndarray) -> np.ndarray:
    """True where the next element belongs to another entity (codes are grouped)."""
    return np.append(_run_starts(codes)[1:], True) if len(codes) else np.empty(0, dtype=bool)


def _distinct_in_windows(
    codes: np.ndarray, lower: np.ndarray, upper: np.ndarray, elements: _WindowElements | None = None
) -> np.ndarray:
    """len(set(codes[lo:hi])) for each (lo, hi) with lo < hi; ``codes`` are a :class:`CodedStrings`' (-1, null,
    is a value of its own, as in a set), so they are small integers already and need no hashing to compare.

    Two ways, whichever touches fewer elements. Gathering every window's elements and counting distinct
    (window, value) pairs costs per window element: right for a stream's small batches, few short windows over a
    large held history. Counting first occurrences costs per held value plus per window element: right when the
    windows together span the history many times over (a batch that is most of the history). ``elements``, the
    windows' elements already gathered (:meth:`_WindowElements.if_cheaper`), chooses the first way.
    """
    lengths = upper - lower
    if elements is None:
        elements = _WindowElements.if_cheaper(lower, lengths, len(codes))
    if elements is not None:
        width = int(codes.max(initial=-1)) + 2
        pairs = np.repeat(np.arange(len(lower)) * width, lengths) + (codes[elements.positions] + 1)
        if len(lower) * width <= _SEEN_TABLE_MAX_CELLS:
            # One flag per (window, value): marking them and counting each window's row costs a few ns per
            # element, against ~10 ns for hashing the pairs (a card bucket's 785,355 window elements at 300 s
            # of the latency benchmark: 5.7 against 13.8 ms).
            seen = np.zeros(len(lower) * width, dtype=bool)
            seen[pairs] = True
            return np.count_nonzero(seen.reshape(len(lower), width), axis=1).astype(np.int64)
        return np.bincount(pd.unique(pairs) // width, minlength=len(lower)).astype(np.int64)
    return _first_occurrences_in_windows(codes, lower, lengths)


_GATHER_CHEAPER_BELOW = 3
"""Window elements per held value under which gathering the windows costs less than scanning the history."""
_SEEN_TABLE_MAX_CELLS = 1 << 25
"""Largest (windows x distinct values) flag table the distinct count allocates (32 MiB); above it, it hashes."""


@dataclass(frozen=True)
class _WindowElements:
    """Every element of every window [lo, lo + length), windows one after the other: where each window starts in
    that sequence, and each element's position in the history. Gathered once per window length and shared by the
    aggregates that read elements (the max and the distinct count of a card's day: ~800,000 elements per batch in
    a card bucket at 300 s of the latency benchmark)."""

    offsets: np.ndarray
    positions: np.ndarray

    @classmethod
    def of(cls, lower: np.ndarray, lengths: np.ndarray) -> _WindowElements:
        offsets = np.cumsum(lengths) - lengths
        # Element k of window w sits at lower[w] + (k - offsets[w]): one repeat of the per-window shift.
        return cls(offsets, np.arange(int(lengths.sum())) + np.repeat(lower - offsets, lengths))

    @classmethod
    def if_cheaper(cls, lower: np.ndarray, lengths: np.ndarray, history_length: int) -> _WindowElements | None:
        """The gathered elements, or None when the windows together span the history so often that a pass over
        the whole history costs less (:data:`_GATHER_CHEAPER_BELOW`)."""
        if int(lengths.sum()) < _GATHER_CHEAPER_BELOW * history_length:
            return cls.of(lower, lengths)
        return None


def _first_occurrences_in_windows(codes: np.ndarray, lower: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The scanning count: position j counts in [lo, lo + length) iff the previous position holding the same
    value is before lo. Each step looks at the j-th position of every window still that long, so the loop's
    work is the total of the window lengths, in numpy."""
    distinct = np.zeros(len(lower), dtype=np.int64)
    by_value = np.argsort(codes, kind="stable")  # positions ascending within each value
    same_value = codes[by_value[1:]] == codes[by_value[:-1]]
    previous_same = np.full(len(codes), -1, dtype=np.int64)
    previous_same[by_value[1:][same_value]] = by_value[:-1][same_value]
    pending = np.flatnonzero(lengths > 0)
    step = 0
    while pending.size:
        starts = lower[pending]
        distinct[pending] += previous_same[starts + step] < starts
        step += 1
        pending = pending[lengths[pending] > step]
    return distinct


def _range_max(
    values: np.ndarray, lower: np.ndarray, upper: np.ndarray, elements: _WindowElements | None = None
) -> np.ndarray:
    """max(values[lo:hi]) for each (lo, hi) with lo < hi, vectorised with ufunc.reduceat.

    ``reduceat`` also reduces the stretch between one window's end and the next window's start. In the batch's
    arrival order those stretches jump back and forth across the history (3,500 windows over 517,500 values:
    92 ms, against 1 ms in position order), so the windows are reduced in the order of their starts. When they
    are short against the history, only their elements are gathered (``elements``, if the caller has them
    already) and reduced (0.75 ms there).
    """
    if not len(lower):
        return np.empty(0, dtype=np.float64)
    lengths = upper - lower
    if elements is None:
        elements = _WindowElements.if_cheaper(lower, lengths, len(values))
    if elements is not None:
        return np.maximum.reduceat(values[elements.positions], elements.offsets)
    by_start = np.argsort(lower, kind="stable")
    padded = np.append(values, -np.inf)  # reduceat indices must be < len; the pad is never inside a window
    bounds = np.empty(2 * len(lower), dtype=np.int64)
    bounds[0::2] = lower[by_start]
    bounds[1::2] = upper[by_start]
    result = np.empty(len(lower), dtype=np.float64)
    result[by_start] = np.maximum.reduceat(padded, bounds)[0::2]
    return result
