"""The windowed features against a brute-force reference written independently in plain pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.testing.reference import card_events
from pipelines.testing.reference import reference_features as reference
from pipelines.transforms import windows as windows_module
from pipelines.transforms.windows import (
    CodedStrings,
    EntityHistory,
    _distinct_in_windows,
    _range_max,
    _WindowElements,
    compute_window_features,
)

MINUTE_MS = 60_000


def reference_features(events: pd.DataFrame, aggregates_of: str) -> pd.DataFrame:
    spec = CARD_FEATURES if aggregates_of == "card" else MERCHANT_FEATURES
    return reference(events.assign(**{spec.key_column: "one-entity"}), spec)


def _events(times_min: list[float], amounts: list[float], merchants: list[str], card: str = "c1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "card_id": card,
            "event_time_ms": (np.array(times_min) * MINUTE_MS).astype(np.int64),
            "amount": amounts,
            "merchant_id": merchants,
        }
    )


def test_hand_checked_card_example() -> None:
    events = _events([0, 5, 9, 30, 70], [10.0, 20.0, 5.0, 100.0, 1.0], ["m1", "m2", "m1", "m3", "m1"])
    features, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    assert features["card_txn_count_10m"].tolist() == [1, 2, 3, 1, 1]
    assert features["card_txn_count_1h"].tolist() == [1, 2, 3, 4, 2]  # at 70m: (10m, 70m] holds 30 and 70
    assert features["card_amount_sum_1h"].tolist() == [10.0, 30.0, 35.0, 135.0, 101.0]
    assert features["card_amount_max_24h"].tolist() == [10.0, 20.0, 20.0, 100.0, 100.0]
    assert features["card_distinct_merchants_24h"].tolist() == [1, 2, 2, 3, 3]
    assert features["card_amount_mean_24h"].tolist() == pytest.approx([10.0, 15.0, 35 / 3, 33.75, 27.2])
    assert math.isnan(features["card_seconds_since_prev_txn"].iloc[0])
    assert features["card_seconds_since_prev_txn"].tolist()[1:] == [300.0, 240.0, 1260.0, 2400.0]
    assert len(history) == 5
    assert features["is_latest_in_batch"].tolist() == [False, False, False, False, True]


def test_window_excludes_its_lower_bound() -> None:
    events = _events([0, 10], [1.0, 2.0], ["m", "m"])  # exactly 10 minutes apart: (t-10m, t] excludes 0
    features, _ = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    assert features["card_txn_count_10m"].tolist() == [1, 1]
    assert features["card_txn_count_1h"].tolist() == [1, 2]


def test_history_carries_across_batches_like_one_batch() -> None:
    events = _events([0, 3, 4, 50, 61, 200, 1500], [5, 6, 7, 8, 9, 10, 11], list("abcabca"))
    whole, _ = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    first, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events.iloc[:3])
    history = history.pruned(horizon_ms=int(events["event_time_ms"].iloc[2]) - CARD_FEATURES.retention_ms)
    second, _ = compute_window_features(CARD_FEATURES, history, events.iloc[3:])
    features = CARD_FEATURES.feature_names  # is_latest_in_batch is per call, so it differs by design
    pd.testing.assert_frame_equal(pd.concat([first, second])[features], whole[features])


def test_pruning_keeps_the_latest_event_for_seconds_since_prev() -> None:
    events = _events([0], [1.0], ["m"])
    _, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    pruned = history.pruned(horizon_ms=10 * 24 * 60 * MINUTE_MS)
    assert len(pruned) == 1
    later = _events([2 * 24 * 60], [3.0], ["n"])
    features, _ = compute_window_features(CARD_FEATURES, pruned, later)
    assert features["card_seconds_since_prev_txn"].iloc[0] == 2 * 24 * 3600
    assert features["card_txn_count_24h"].iloc[0] == 1  # the kept old event is outside every window


def test_same_millisecond_events_count_earlier_arrivals_only() -> None:
    events = _events([1, 1], [2.0, 3.0], ["a", "b"])
    features, _ = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    assert features["card_txn_count_10m"].tolist() == [1, 2]
    assert math.isnan(features["card_seconds_since_prev_txn"].iloc[0])
    assert features["card_seconds_since_prev_txn"].iloc[1] == 0.0


def test_out_of_order_event_in_a_batch_sees_only_earlier_times() -> None:
    events = _events([10, 5], [2.0, 3.0], ["a", "b"])  # arrives late within the batch
    features, _ = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    assert features["card_txn_count_10m"].tolist() == [2, 1]
    assert features["card_seconds_since_prev_txn"].iloc[0] == 300.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3 * 24 * 60),
            st.floats(min_value=0.01, max_value=5000, allow_nan=False),
            st.sampled_from(["m1", "m2", "m3", "m4"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=0, max_value=40),
)
def test_matches_the_brute_force_reference(rows: list[tuple[int, float, str]], split: int) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    events = _events([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    split = min(split, len(events))
    for spec, kind in ((CARD_FEATURES, "card"), (MERCHANT_FEATURES, "merchant")):
        events = events.assign(**{spec.key_column: "one-entity"}) if kind == "merchant" else events
        first, history = compute_window_features(spec, EntityHistory.empty(spec), events.iloc[:split])
        if split:
            history = history.pruned(int(events["event_time_ms"].iloc[split - 1]) - spec.retention_ms)
        second, _ = compute_window_features(spec, history, events.iloc[split:])
        got = pd.concat([first, second])
        expected = reference_features(events, kind)
        for name in spec.feature_names:
            np.testing.assert_allclose(
                got[name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float), rtol=1e-9, err_msg=name
            )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3"]),
            st.integers(min_value=0, max_value=2 * 24 * 60),
            st.floats(min_value=0.01, max_value=5000, allow_nan=False),
            st.sampled_from(["m1", "m2", "m3"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=0, max_value=60),
)
def test_many_entities_in_one_call_equal_each_entity_alone(rows: list[tuple[str, int, float, str]], split: int) -> None:
    rows = sorted(rows, key=lambda r: r[1])  # event-time order overall, entities interleaved
    events = card_events(rows)
    split = min(split, len(events))
    first, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events.iloc[:split])
    if split:
        history = history.pruned(int(events["event_time_ms"].iloc[split - 1]) - CARD_FEATURES.retention_ms)
    second, _ = compute_window_features(CARD_FEATURES, history, events.iloc[split:])
    got = pd.concat([first, second])
    for card, group in events.groupby("card_id"):
        expected = reference(group.reset_index(drop=True), CARD_FEATURES)
        for name in CARD_FEATURES.feature_names:
            np.testing.assert_allclose(
                got.loc[group.index, name].to_numpy(dtype=float),
                expected[name].to_numpy(dtype=float),
                rtol=1e-9,
                err_msg=f"{card} {name}",
            )
    assert got.loc[first.index, "is_latest_in_batch"].sum() == events.iloc[:split]["card_id"].nunique()


def test_idle_entities_are_forgotten_and_latest_events_kept() -> None:
    events = pd.concat([_events([0, 5], [1.0, 2.0], ["m", "m"], "old"), _events([3000], [3.0], ["m"], "new")])
    _, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), events)
    pruned = history.pruned(horizon_ms=2000 * MINUTE_MS, forget_before_ms=10 * MINUTE_MS)
    assert pruned.keys.values().tolist() == ["new"]
    kept = history.pruned(horizon_ms=2000 * MINUTE_MS)
    assert sorted(kept.keys.values().tolist()) == ["new", "old"]  # each entity's latest survives the horizon
    assert kept.times_ms[kept.keys.values() == "old"].tolist() == [5 * MINUTE_MS]


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3", "c4"]), st.integers(0, 100), st.sampled_from(["m1", "m2", "m3"])),
        min_size=1,
        max_size=40,
    ),
    horizon=st.integers(-1, 101),
    forget_before=st.one_of(st.none(), st.integers(-1, 101)),
)
def test_pruning_keeps_what_a_per_entity_reading_of_the_rule_keeps(
    events: list[tuple[str, int, str]], horizon: int, forget_before: int | None
) -> None:
    """Each entity keeps its events after the horizon and its latest event, unless its latest is at or before
    ``forget_before``; merchants no kept event names leave the dictionary. Checked entity by entity in plain Python."""
    frame = pd.DataFrame(
        {
            "card_id": [card for card, _, _ in events],
            "event_time_ms": [minute * MINUTE_MS for _, minute, _ in events],
            "amount": 1.0,
            "merchant_id": [merchant for _, _, merchant in events],
        }
    )
    _, history = compute_window_features(CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), frame)
    forget_ms = None if forget_before is None else forget_before * MINUTE_MS
    pruned = history.pruned(horizon_ms=horizon * MINUTE_MS, forget_before_ms=forget_ms)
    held = pd.DataFrame(
        {"card": history.keys.values(), "t": history.times_ms, "m": history.categories["merchant_id"].values()}
    )
    expected: list[tuple[str, int, str]] = []
    for card, run in held.groupby("card", sort=False):
        latest = run["t"].max()
        if forget_ms is not None and latest <= forget_ms:
            continue
        last_position = run.index[-1]  # the run's last event: its latest, equal times in arrival order
        expected += [
            (str(card), int(t), str(m))
            for i, t, m in zip(run.index, run["t"], run["m"], strict=True)
            if t > horizon * MINUTE_MS or i == last_position
        ]
    got = list(
        zip(pruned.keys.values(), pruned.times_ms.tolist(), pruned.categories["merchant_id"].values(), strict=True)
    )
    assert sorted(got) == sorted(expected)
    merchants = pruned.categories["merchant_id"]
    assert sorted(merchants.dictionary.to_pylist()) == sorted({m for _, _, m in expected})
    assert sorted(pruned.keys.dictionary.to_pylist()) == sorted({card for card, _, _ in expected})


_WINDOWS = st.lists(st.tuples(st.integers(0, 59), st.integers(1, 60)), min_size=0, max_size=20)


@pytest.mark.parametrize(
    ("gather_below", "table_cells"),
    [(0, 1 << 25), (10**9, 1 << 25), (10**9, 0)],
    ids=["scanning", "gathering-flags", "gathering-hashed"],
)
@settings(deadline=None)
@given(
    values=st.lists(st.sampled_from(["m-1", "m-2", "m-3", "m-4", None]), min_size=1, max_size=60),
    bounds=_WINDOWS,
)
def test_distinct_in_windows_is_the_size_of_each_windows_set(
    values: list[str | None], bounds: list[tuple[int, int]], gather_below: int, table_cells: int
) -> None:
    """Every way of counting agrees with a Python set over each window, None counting as a value."""
    windows = [(low, high) for low, high in bounds if low < high <= len(values)]
    lower = np.array([low for low, _ in windows], dtype=np.int64)
    upper = np.array([high for _, high in windows], dtype=np.int64)
    expected = [len(set(values[low:high])) for low, high in windows]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows_module, "_GATHER_CHEAPER_BELOW", gather_below)
        patch.setattr(windows_module, "_SEEN_TABLE_MAX_CELLS", table_cells)
        assert _distinct_in_windows(CodedStrings.from_values(values).codes, lower, upper).tolist() == expected


@pytest.mark.parametrize("gather_below", [0, 10**9], ids=["whole-array", "gathering"])
@settings(deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60), bounds=_WINDOWS)
def test_range_max_is_the_max_of_each_window(
    values: list[float], bounds: list[tuple[int, int]], gather_below: int
) -> None:
    windows = [(low, high) for low, high in bounds if low < high <= len(values)]
    lower = np.array([low for low, _ in windows], dtype=np.int64)
    upper = np.array([high for _, high in windows], dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows_module, "_GATHER_CHEAPER_BELOW", gather_below)
        got = _range_max(np.array(values, dtype=np.float64), lower, upper)
    assert got.tolist() == [max(values[low:high]) for low, high in windows]


@settings(deadline=None)
@given(
    values=st.lists(st.sampled_from([3.0, -1.0, 7.5, 0.0]), min_size=1, max_size=60),
    bounds=_WINDOWS,
)
def test_gathered_window_elements_are_each_windows_positions_and_serve_max_and_distinct(
    values: list[float], bounds: list[tuple[int, int]]
) -> None:
    """The elements gathered once per window length (as ``compute_window_features`` shares them between a max and
    a distinct count) are each window's positions in order, and both aggregates give what they give alone."""
    windows = [(low, high) for low, high in bounds if low < high <= len(values)]
    lower = np.array([low for low, _ in windows], dtype=np.int64)
    upper = np.array([high for _, high in windows], dtype=np.int64)
    elements = _WindowElements.of(lower, upper - lower)
    assert elements.positions.tolist() == [p for low, high in windows for p in range(low, high)]
    assert elements.offsets.tolist() == np.cumsum([0] + [high - low for low, high in windows])[:-1].tolist()
    array = np.array(values, dtype=np.float64)
    codes = CodedStrings.from_values([str(v) for v in values]).codes
    assert _range_max(array, lower, upper, elements).tolist() == [max(values[low:high]) for low, high in windows]
    distinct = _distinct_in_windows(codes, lower, upper, elements).tolist()
    assert distinct == [len(set(values[low:high])) for low, high in windows]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3", "c4"]),
            st.integers(min_value=0, max_value=3 * 24 * 60),
            st.floats(min_value=0.01, max_value=5000, allow_nan=False),
            st.sampled_from(["m1", "m2", "m3"]),
        ),
        min_size=1,
        max_size=80,
    ),
    st.lists(st.integers(min_value=0, max_value=80), min_size=2, max_size=2),
)
def test_three_batches_merged_into_a_pruned_history_equal_the_reference(
    rows: list[tuple[str, int, float, str]], cuts: list[int]
) -> None:
    """Each batch is merged into the history the last one left (pruned, dictionaries compacted): entities
    interleave, new ones appear in later batches, and each one's windows still see exactly its known events."""
    rows = sorted(rows, key=lambda r: r[1])
    events = card_events(rows)
    low, high = sorted(min(cut, len(events)) for cut in cuts)
    history = EntityHistory.empty(CARD_FEATURES)
    outputs = []
    for batch in (events.iloc[:low], events.iloc[low:high], events.iloc[high:]):
        computed, history = compute_window_features(CARD_FEATURES, history, batch)
        outputs.append(computed)
        latest = batch.assign(flag=computed["is_latest_in_batch"]).groupby("card_id")
        for _, group in latest:  # exactly one flagged per card: its last arrival (arrivals are in time order)
            assert group["flag"].tolist() == [False] * (len(group) - 1) + [True]
        if len(batch):
            history = history.pruned(int(batch["event_time_ms"].max()) - CARD_FEATURES.retention_ms)
    got = pd.concat(outputs)
    for _, group in events.groupby("card_id"):
        expected = reference(group, CARD_FEATURES)
        for name in CARD_FEATURES.feature_names:
            np.testing.assert_allclose(
                got.loc[group.index, name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float), rtol=1e-9
            )


def test_coded_strings_extend_their_dictionary_and_compact_it() -> None:
    held = CodedStrings.from_values(["b", "a", None, "b"])
    assert held.values().tolist() == ["b", "a", None, "b"]
    codes, dictionary = held.codes_for(np.array(["c", "a", None, "c"], dtype=object))
    assert len(dictionary) == 3  # "c" added once
    assert CodedStrings(codes, dictionary).values().tolist() == ["c", "a", None, "c"]
    assert codes[1] == held.codes[1]  # a held value keeps its code
    compacted = CodedStrings(codes, dictionary).compacted()
    assert sorted(compacted.dictionary.to_pylist()) == ["a", "c"]  # "b" is no longer used
    assert compacted.values().tolist() == ["c", "a", None, "c"]


def test_late_event_lands_between_its_entitys_held_events() -> None:
    """An event older than some of its entity's held events (but not late) is inserted among them: its windows
    see only the earlier ones, and a later event sees it."""
    _, history = compute_window_features(
        CARD_FEATURES, EntityHistory.empty(CARD_FEATURES), _events([0, 10, 20], [1, 2, 4], list("abc"))
    )
    between, history = compute_window_features(CARD_FEATURES, history, _events([15], [8.0], ["d"]))
    assert between["card_txn_count_10m"].tolist() == [2]  # (5m, 15m]: 10 and itself
    assert between["card_txn_count_1h"].tolist() == [3]  # 0, 10 and itself; 20 is after it
    assert between["card_amount_sum_1h"].tolist() == [11.0]
    assert between["card_seconds_since_prev_txn"].tolist() == [300.0]
    assert history.times_ms.tolist() == [t * MINUTE_MS for t in (0, 10, 15, 20)]
    later, _ = compute_window_features(CARD_FEATURES, history, _events([25], [16.0], ["a"]))
    assert later["card_txn_count_10m"].tolist() == [2]  # (15m, 25m]: 20 and itself
    assert later["card_txn_count_1h"].tolist() == [5]
    assert later["card_distinct_merchants_24h"].tolist() == [4]  # a, b, c, d
