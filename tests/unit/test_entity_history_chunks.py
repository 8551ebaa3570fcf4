"""A bucket's history kept as chunks: decoding the chunks gives the same features as the worker's own copy."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.domains.card_fraud import CARD_FEATURES, CARD_FRAUD
from pipelines.errors import ConfigurationError
from pipelines.streaming import columns as C
from pipelines.streaming.entity_state import (
    WORKER_CACHE_MODULE,
    EntityHistoryProcessor,
    compaction_point,
    worker_histories,
)
from pipelines.testing.reference import card_events
from pipelines.transforms.windows import EntityHistory, compute_window_features, events_history

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


def _features_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    for name in [*CARD_FEATURES.feature_names, "is_latest_in_batch"]:
        np.testing.assert_allclose(
            got[name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float), rtol=1e-12, err_msg=name
        )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3"]),
            st.integers(min_value=0, max_value=120),  # out of order and equal times included
            st.floats(min_value=0.01, max_value=500, allow_nan=False),
            st.sampled_from(["m1", "m2", "m3", "m4"]),
        ),
        min_size=1,
        max_size=50,
    ),
    st.lists(st.integers(min_value=0, max_value=50), max_size=4),
)
def test_concatenated_chunks_give_the_features_of_the_merged_history(
    rows: list[tuple[str, int, float, str]], cuts: list[int]
) -> None:
    events = card_events(rows)
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    batches = [events.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    *held_batches, last = batches
    merged = EntityHistory.empty(CARD_FEATURES)
    for batch in held_batches:
        _, merged = compute_window_features(CARD_FEATURES, merged, batch)
    chunks = [events_history(CARD_FEATURES, batch) for batch in held_batches]
    concatenated = EntityHistory.concatenated(CARD_FEATURES, chunks)
    assert len(concatenated) == len(merged)
    from_merged, _ = compute_window_features(CARD_FEATURES, merged, last)
    from_chunks, _ = compute_window_features(CARD_FEATURES, concatenated, last)
    _features_equal(from_chunks, from_merged)


def test_a_chunk_event_older_than_an_earlier_chunks_lands_before_it() -> None:
    earlier_chunk = card_events([("c1", 50, 1.0, "m1"), ("c2", 7, 9.0, "m1")])
    later_chunk = card_events([("c1", 10, 2.0, "m2"), ("c1", 50, 3.0, "m3")])  # 10 arrived after 50
    history = EntityHistory.concatenated(
        CARD_FEATURES, [events_history(CARD_FEATURES, earlier_chunk), events_history(CARD_FEATURES, later_chunk)]
    )
    c1 = history.take(np.flatnonzero(history.keys.values() == "c1"))
    assert (c1.times_ms // MINUTE_MS).tolist() == [10, 50, 50]
    assert c1.numeric["amount"].tolist() == [2.0, 1.0, 3.0]  # equal times: the earlier chunk's first
    assert c1.categories["merchant_id"].values().tolist() == ["m2", "m1", "m3"]


def test_events_history_groups_entities_and_orders_times_keeping_arrival_for_ties() -> None:
    rows = [("b", 5, 1.0, "m"), ("a", 3, 2.0, "m"), ("b", 1, 3.0, "x"), ("b", 5, 4.0, "y")]
    history = events_history(CARD_FEATURES, card_events(rows))
    keys = history.keys.values().tolist()
    assert sorted(keys) == ["a", "b", "b", "b"] and history.keys.run_starts().sum() == 2  # each card one run
    held = pd.DataFrame(
        {
            "card": keys,
            "minute": history.times_ms // MINUTE_MS,
            "amount": history.numeric["amount"],
            "merchant": history.categories["merchant_id"].values(),
        }
    )
    b = held[held["card"] == "b"]
    assert b["minute"].tolist() == [1, 5, 5]
    assert b["amount"].tolist() == [3.0, 1.0, 4.0]  # the two at minute 5 in arrival order
    assert b["merchant"].tolist() == ["x", "m", "y"]


class FakeValueState:
    """pyspark's ValueState surface the processor uses, in memory."""

    def __init__(self) -> None:
        self.value: tuple[Any, ...] | None = None

    def exists(self) -> bool:
        return self.value is not None

    def get(self) -> tuple[Any, ...] | None:
        return self.value

    def update(self, value: tuple[Any, ...]) -> None:
        self.value = value


class FakeListState:
    """pyspark's ListState surface the processor may use, in memory."""

    def __init__(self) -> None:
        self.values: list[tuple[Any, ...]] = []
        self.fetches = 0

    def get(self) -> Iterator[tuple[Any, ...]]:
        self.fetches += 1
        return iter(list(self.values))

    def appendList(self, values: list[tuple[Any, ...]]) -> None:  # noqa: N802  # pyspark's name
        self.values.extend(values)

    # No appendValue: pyspark 4.0.0 may truncate its large values on the way to the JVM (SPARK-53870), so the
    # processor must not call it.

    def put(self, values: list[tuple[Any, ...]]) -> None:
        self.values = list(values)


class FakeHandle:
    def __init__(self) -> None:
        self.lists: dict[str, FakeListState] = {}
        self.values: dict[str, FakeValueState] = {}

    def getListState(self, name: str, schema: str) -> FakeListState:  # noqa: N802
        return self.lists.setdefault(name, FakeListState())

    def getValueState(self, name: str, schema: str) -> FakeValueState:  # noqa: N802
        return self.values.setdefault(name, FakeValueState())


class Watermark:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def getCurrentWatermarkInMs(self) -> int:  # noqa: N802
        return self.ms


def _stage_rows(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """Rows as the stateful operator hands them over: (card, minutes, amount)."""
    return pd.DataFrame(
        {
            C.ENTITY_ID: [r[0] for r in rows],
            C.EVENT_TIME_MS: [int(r[1] * MINUTE_MS) for r in rows],
            "amount": [r[2] for r in rows],
            "merchant_id": ["m1" if r[2] < 50 else "m2" for r in rows],
            C.VERDICT: C.OK,
        }
    )


BATCHES = [  # (watermark minutes, rows); the card c-idle goes quiet for longer than the idle horizon (2 days)
    (0, [("c1", 0, 10.0), ("c-idle", 1, 20.0), ("c2", 2, 60.0)]),
    (0, [("c1", 5, 30.0), ("c2", 6, 5.0)]),
    (10, [("c1", 12, 70.0), ("c1", 3, 1.0)]),  # minute 3 is late
    (60 * 30, [("c1", 60 * 30, 40.0)]),  # 30 hours on: the 24-hour windows have emptied
    (60 * 30, [("c2", 60 * 30 + 1, 8.0), ("c1", 60 * 30 + 2, 9.0)]),
    (60 * 60, [("c-idle", 60 * 60, 15.0), ("c1", 60 * 60, 3.0)]),  # c-idle forgotten: no previous event
    (60 * 60, [("c1", 60 * 60 + 1, 2.0), ("c2", 60 * 60 + 2, 4.0)]),
]


def _process(
    processor: EntityHistoryProcessor, watermark_min: int, rows: list[tuple[str, float, float]]
) -> pd.DataFrame:
    frames = processor.handleInputRows(("card", 0), iter([_stage_rows(rows)]), Watermark(watermark_min * MINUTE_MS))
    return pd.concat(list(frames), ignore_index=True)


def _no_shared_chunks(tmp_path: Path) -> Path:
    """A latest-chunks directory that cannot be created (its parent is a file): nothing is ever shared."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    return blocker / "chunks"


def _run(
    *,
    keep_worker_copy: bool,
    compact_after_chunks: int,
    shared_chunks: Path,
    workers: int = 1,
) -> tuple[list[pd.DataFrame], FakeHandle]:
    """The batches through one processor; ``workers`` > 1 takes turns, each with its own kept copies, all
    leaving their latest chunks in ``shared_chunks``."""
    processor = EntityHistoryProcessor(CARD_FRAUD, timedelta(days=2), 4, compact_after_chunks, shared_chunks)
    handle = FakeHandle()
    processor.init(handle)
    copies: list[dict[Any, Any]] = [{} for _ in range(workers)]
    worker_histories()  # creates the module the copies hang on
    cache_module = sys.modules[WORKER_CACHE_MODULE]
    outputs = []
    for number, (watermark_min, rows) in enumerate(BATCHES):
        cache_module.kept = copies[number % workers]  # type: ignore[attr-defined]
        if not keep_worker_copy:
            worker_histories().clear()  # as if a restarted worker ran the batch
        outputs.append(_process(processor, watermark_min, rows))
    return outputs, handle


def test_a_worker_without_the_copy_computes_the_same_features_from_the_chunks(tmp_path: Path) -> None:
    kept, _ = _run(keep_worker_copy=True, compact_after_chunks=100, shared_chunks=tmp_path / "kept")
    decoded, handle = _run(keep_worker_copy=False, compact_after_chunks=100, shared_chunks=tmp_path / "decoded")
    assert len(handle.lists["history_chunks"].values) == len(BATCHES)  # one chunk per batch, nothing rewritten
    for got, expected in zip(decoded, kept, strict=True):
        assert got[C.VERDICT].tolist() == expected[C.VERDICT].tolist()
        _features_equal(got[got[C.VERDICT] == C.OK], expected[expected[C.VERDICT] == C.OK])
    late = kept[2][kept[2][C.VERDICT] == C.LATE]
    assert late[C.EVENT_TIME_MS].tolist() == [3 * MINUTE_MS]
    assert kept[3]["card_txn_count_24h"].tolist() == [1]
    assert kept[3]["card_seconds_since_prev_txn"].tolist() == [(60 * 30 - 12) * 60.0]  # the latest event is kept
    idle = kept[5].set_index(C.ENTITY_ID)
    assert math.isnan(idle.loc["c-idle", "card_seconds_since_prev_txn"])
    assert idle.loc["c1", "card_seconds_since_prev_txn"] == (60 * 60 - 60 * 30 - 2) * 60.0


def test_workers_taking_turns_add_the_chunks_written_since_their_copy(tmp_path: Path) -> None:
    kept, _ = _run(keep_worker_copy=True, compact_after_chunks=100, shared_chunks=tmp_path / "kept")
    for workers in (2, 3):
        taking_turns, handle = _run(
            keep_worker_copy=True, compact_after_chunks=100, shared_chunks=_no_shared_chunks(tmp_path), workers=workers
        )
        assert handle.lists["history_chunks"].fetches == len(BATCHES) - 1  # every batch but the first
        for got, expected in zip(taking_turns, kept, strict=True):
            _features_equal(got[got[C.VERDICT] == C.OK], expected[expected[C.VERDICT] == C.OK])


@pytest.mark.parametrize("compact_after_chunks", [100, 3])
def test_a_worker_one_write_behind_applies_the_chunk_another_worker_left_and_fetches_nothing(
    tmp_path: Path, compact_after_chunks: int
) -> None:
    kept, _ = _run(keep_worker_copy=True, compact_after_chunks=100, shared_chunks=tmp_path / "kept")
    shared = tmp_path / "shared"
    two, handle = _run(
        keep_worker_copy=True, compact_after_chunks=compact_after_chunks, shared_chunks=shared, workers=2
    )
    assert handle.lists["history_chunks"].fetches == 1  # the second worker's first batch: it has no copy yet
    three, three_handle = _run(
        keep_worker_copy=True, compact_after_chunks=compact_after_chunks, shared_chunks=shared, workers=3
    )
    assert three_handle.lists["history_chunks"].fetches > 0  # two writes behind: the chunk left is not enough
    for outputs in (two, three):
        for got, expected in zip(outputs, kept, strict=True):
            _features_equal(got[got[C.VERDICT] == C.OK], expected[expected[C.VERDICT] == C.OK])


def test_the_chunk_list_is_compacted_into_one_chunk_of_the_pruned_history(tmp_path: Path) -> None:
    kept, _ = _run(keep_worker_copy=True, compact_after_chunks=100, shared_chunks=tmp_path / "kept")
    compacted, handle = _run(keep_worker_copy=False, compact_after_chunks=3, shared_chunks=tmp_path / "compacted")
    for got, expected in zip(compacted, kept, strict=True):
        _features_equal(got[got[C.VERDICT] == C.OK], expected[expected[C.VERDICT] == C.OK])
    # The card entity of bucket 0 is group 0: its list reaches 3 chunks at the 3rd, 5th and 7th batches, each
    # rewriting it as one.
    assert len(handle.lists["history_chunks"].values) == 1
    assert handle.values["last_write"].value is not None and handle.values["last_write"].value[1] == 1


def test_a_replayed_batch_reads_the_committed_state_not_the_workers_newer_copy(tmp_path: Path) -> None:
    processor = EntityHistoryProcessor(CARD_FRAUD, timedelta(days=2), 4, latest_chunks_directory=tmp_path)
    handle = FakeHandle()
    processor.init(handle)
    worker_histories().clear()
    for watermark_min, rows in BATCHES[:2]:
        _process(processor, watermark_min, rows)
    committed = {name: list(state.values) for name, state in handle.lists.items()}
    committed_token = handle.values["last_write"].value
    first_attempt = _process(processor, *BATCHES[2])
    for name, values in committed.items():  # the attempt's commit failed: the state store rolls back
        handle.lists[name].values = values
    handle.values["last_write"].value = committed_token
    replayed = _process(processor, *BATCHES[2])  # same worker, whose copy now holds the failed attempt's events
    _features_equal(replayed[replayed[C.VERDICT] == C.OK], first_attempt[first_attempt[C.VERDICT] == C.OK])


def test_groups_growing_in_step_compact_in_consecutive_batches() -> None:
    assert [compaction_point(64, group) for group in range(4)] == [64, 65, 66, 67]
    assert compaction_point(64, 64 + 5) == 69  # many groups: the offsets wrap, the points stay within 2x


def test_an_idle_horizon_shorter_than_the_longest_window_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"stream.idle_entity_days \(0.5 days\).*24 hours"):
        EntityHistoryProcessor(CARD_FRAUD, timedelta(hours=12), 4)
    EntityHistoryProcessor(CARD_FRAUD, timedelta(hours=24), 4)  # as long as the window: accepted
