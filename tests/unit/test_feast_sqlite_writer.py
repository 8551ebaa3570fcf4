"""The guarded SQLite writer: never back in time, idempotent on replay, read back exactly by Feast's SDK."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast import FeatureStore

from pipelines.config import Settings
from pipelines.feast_io.errors import FeatureRowsError, OnlineStoreNotReadyError, UnknownFeatureViewError
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.sqlite_writer import GUARD_COLUMN, SqliteOnlineWriter
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.testing import isolated_settings

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CARD_FEATURES = {
    "card_txn_count_10m": "int",
    "card_txn_count_1h": "int",
    "card_txn_count_24h": "int",
    "card_amount_sum_1h": "float",
    "card_amount_sum_24h": "float",
    "card_amount_max_24h": "float",
    "card_amount_mean_24h": "float",
    "card_distinct_merchants_24h": "int",
    "card_seconds_since_prev_txn": "float",
}


@dataclass
class Online:
    settings: Settings
    store: FeatureStore
    writer: SqliteOnlineWriter

    def read(self, cards: Sequence[str]) -> dict[str, list[Any]]:
        response = self.store.get_online_features(
            features=[f"card_features:{name}" for name in CARD_FEATURES], entity_rows=[{"card_id": c} for c in cards]
        )
        return response.to_dict()

    def stored_times(self, cards: Sequence[str]) -> list[int]:
        response = self.store.get_online_features(
            features=["card_features:card_txn_count_1h"], entity_rows=[{"card_id": c} for c in cards]
        )
        return response.to_dict(include_event_timestamps=True)["card_txn_count_1h__ts"]

    def table_rows(self) -> int:
        with sqlite3.connect(feast_paths(self.settings).online_db) as conn:
            return int(conn.execute("SELECT count(*) FROM featurestream_card_features").fetchone()[0])


@pytest.fixture
def online(tmp_path: Path) -> Online:
    settings = isolated_settings(tmp_path / "state")
    apply_repo(settings)
    writer = SqliteOnlineWriter.from_settings(settings)
    return Online(settings, feature_store(settings), writer)


def card_rows(cards: Sequence[str], times: Sequence[datetime], seed: int = 0) -> pd.DataFrame:
    """Feature rows with distinct, exactly representable values; every 7th float is null."""
    rng = np.random.default_rng(seed)
    n = len(cards)
    frame: dict[str, Any] = {"card_id": list(cards), "event_time": pd.to_datetime(list(times), utc=True)}
    for name, kind in CARD_FEATURES.items():
        if kind == "int":
            frame[name] = rng.integers(0, 10_000, n)
        else:
            values = rng.normal(0, 1e6, n)
            frame[name] = np.where(np.arange(n) % 7 == 3, np.nan, values)
    return pd.DataFrame(frame)


def expected(rows: pd.DataFrame) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"card_id": rows["card_id"].tolist()}
    for name, kind in CARD_FEATURES.items():
        values = rows[name].tolist()
        out[name] = [None if kind == "float" and np.isnan(v) else v for v in values]
    return out


def new_cards(n: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"card-{prefix}-{i}" for i in range(n)]


def test_values_read_back_through_feast_exactly(online: Online) -> None:
    cards = new_cards(50)
    rows = card_rows(cards, [T0 + timedelta(seconds=i) for i in range(50)])
    rows.loc[0, "card_amount_sum_1h"] = 0.1  # not exact in binary: must survive bit for bit
    rows.loc[1, "card_amount_max_24h"] = -0.0
    rows.loc[2, "card_amount_mean_24h"] = 1.7976931348623157e308
    rows.loc[3, "card_txn_count_24h"] = 2**62

    stats = online.writer.write("card_features", rows)

    assert (stats.rows, stats.entities, stats.written, stats.stale) == (50, 50, 50, 0)
    assert online.read(cards) == expected(rows)
    assert online.stored_times(cards) == [int((T0 + timedelta(seconds=i)).timestamp()) for i in range(50)]


def test_a_newer_event_replaces_an_older_one(online: Online) -> None:
    cards = new_cards(3)
    online.writer.write("card_features", card_rows(cards, [T0] * 3, seed=1))
    newer = card_rows(cards, [T0 + timedelta(minutes=5)] * 3, seed=2)

    stats = online.writer.write("card_features", newer)

    assert (stats.written, stats.stale) == (3, 0)
    assert online.read(cards) == expected(newer)


def test_an_older_event_never_replaces_a_newer_one(online: Online) -> None:
    cards = new_cards(3)
    newer = card_rows(cards, [T0 + timedelta(minutes=5)] * 3, seed=1)
    online.writer.write("card_features", newer)

    stats = online.writer.write("card_features", card_rows(cards, [T0] * 3, seed=2))

    assert (stats.written, stats.stale) == (0, 3)
    assert online.read(cards) == expected(newer)


def test_order_within_one_second_is_kept(online: Online) -> None:
    """Feast stores whole seconds; the guard column keeps 12:00:00.700 ahead of 12:00:00.200."""
    cards = new_cards(1)
    later = card_rows(cards, [T0 + timedelta(milliseconds=700)], seed=1)
    online.writer.write("card_features", later)

    stats = online.writer.write("card_features", card_rows(cards, [T0 + timedelta(milliseconds=200)], seed=2))
    assert stats.stale == 1
    assert online.read(cards) == expected(later)

    latest = card_rows(cards, [T0 + timedelta(milliseconds=900)], seed=3)
    assert online.writer.write("card_features", latest).written == 1
    assert online.read(cards) == expected(latest)


def test_replaying_a_batch_is_idempotent(online: Online) -> None:
    cards = new_cards(20)
    batch = card_rows(cards, [T0 + timedelta(seconds=i) for i in range(20)], seed=4)
    online.writer.write("card_features", batch)
    rows_before = online.table_rows()

    stats = online.writer.write("card_features", batch)

    assert (stats.written, stats.stale) == (20, 0)  # same event times: rewritten with the same values
    assert online.table_rows() == rows_before == 20 * len(CARD_FEATURES)
    assert online.read(cards) == expected(batch)


def test_each_entity_keeps_its_latest_row_whatever_the_input_order(online: Online) -> None:
    cards = new_cards(2)
    a, b = cards
    times = [T0 + timedelta(seconds=5), T0 + timedelta(seconds=9), T0, T0 + timedelta(seconds=9), T0]
    rows = card_rows([a, a, a, b, b], times, seed=5)
    rows.loc[4, "event_time"] = T0 + timedelta(seconds=9)  # b: two rows at the same latest time, the last wins

    stats = online.writer.write("card_features", rows)

    assert (stats.rows, stats.entities, stats.written) == (5, 2, 2)
    assert online.read(cards) == expected(rows.iloc[[1, 4]])


def test_arrow_input_as_spark_sends_it(online: Online) -> None:
    cards = new_cards(4)
    rows = card_rows(cards, [T0 + timedelta(seconds=i) for i in range(4)], seed=6)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.set_column(1, "event_time", table.column("event_time").cast(pa.timestamp("us", tz="UTC")))
    extra = table.append_column("merchant_id", pa.array(["m"] * 4))  # columns of other views are ignored

    stats = online.writer.write_batches("card_features", extra.to_batches(max_chunksize=3))

    assert stats.written == 4
    assert online.read(cards) == expected(rows)


def test_many_rows(online: Online) -> None:
    cards = new_cards(50_000)
    rows = card_rows(cards, [T0 + timedelta(microseconds=i) for i in range(50_000)], seed=7)

    stats = online.writer.write("card_features", rows)

    assert (stats.entities, stats.written) == (50_000, 50_000)
    assert online.table_rows() == 50_000 * len(CARD_FEATURES)
    sample = rows.sample(500, random_state=1)
    assert online.read(sample["card_id"].tolist()) == expected(sample)


def test_concurrent_writers_leave_each_entity_at_its_latest_event(online: Online) -> None:
    cards = new_cards(300)
    rng = np.random.default_rng(8)
    batches = [
        card_rows(cards, [T0 + timedelta(milliseconds=int(ms)) for ms in rng.integers(0, 100_000, 300)], seed=i)
        for i in range(8)
    ]
    errors: list[BaseException] = []

    def write(chunk: list[pd.DataFrame]) -> None:
        try:
            writer = pickle.loads(pickle.dumps(online.writer))  # as on an executor
            for batch in chunk:
                writer.write("card_features", batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batches[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    everything = pd.concat(batches, ignore_index=True)
    latest = everything.loc[everything.groupby("card_id", sort=False)["event_time"].idxmax()]
    latest = latest.set_index("card_id").loc[cards].reset_index()
    assert online.read(cards) == expected(latest)


def test_a_row_written_by_feast_itself_is_guarded_too(online: Online) -> None:
    cards = new_cards(1)
    feast_row = card_rows(cards, [T0 + timedelta(milliseconds=400)], seed=9)
    online.store.write_to_online_store("card_features", feast_row)

    # Feast kept only the second: an event in that second is not provably newer, so it is refused ...
    assert online.writer.write("card_features", card_rows(cards, [T0 + timedelta(milliseconds=900)], seed=10)).stale
    assert online.read(cards) == expected(feast_row)
    # ... and the next second wins.
    newer = card_rows(cards, [T0 + timedelta(seconds=1)], seed=11)
    assert online.writer.write("card_features", newer).written == 1
    assert online.read(cards) == expected(newer)


def test_stored_bytes_equal_what_feasts_own_writer_stores(online: Online, tmp_path: Path) -> None:
    other = isolated_settings(tmp_path / "other")
    apply_repo(other)
    rows = card_rows(new_cards(30), [T0 + timedelta(seconds=i, microseconds=i) for i in range(30)], seed=12)

    online.writer.write("card_features", rows)
    feature_store(other).write_to_online_store("card_features", rows)

    def dump(settings: Settings) -> list[tuple[Any, ...]]:
        with sqlite3.connect(feast_paths(settings).online_db) as conn:
            return conn.execute(
                "SELECT entity_key, feature_name, value, event_ts FROM featurestream_card_features ORDER BY 1, 2"
            ).fetchall()

    assert dump(online.settings) == dump(other)


def test_the_guard_column_holds_microseconds(online: Online) -> None:
    cards = new_cards(1)
    online.writer.write("card_features", card_rows(cards, [T0 + timedelta(microseconds=123_456)]))
    with sqlite3.connect(feast_paths(online.settings).online_db) as conn:
        stored = {row[0] for row in conn.execute(f"SELECT DISTINCT {GUARD_COLUMN} FROM featurestream_card_features")}
    assert stored == {int(T0.timestamp()) * 1_000_000 + 123_456}


def test_bad_rows_are_rejected_clearly(online: Online) -> None:
    rows = card_rows(new_cards(2), [T0, T0])
    with pytest.raises(FeatureRowsError, match="card_amount_sum_1h"):
        online.writer.write("card_features", rows.drop(columns=["card_amount_sum_1h"]))
    with pytest.raises(FeatureRowsError, match="null card_id"):
        online.writer.write("card_features", rows.assign(card_id=[None, "x"]))
    with pytest.raises(FeatureRowsError, match="card_txn_count_1h"):
        online.writer.write("card_features", rows.assign(card_txn_count_1h=[1.5, 2.0]))
    with pytest.raises(UnknownFeatureViewError, match="no_such_view"):
        online.writer.write("no_such_view", rows)


def test_an_empty_partition_writes_nothing(online: Online) -> None:
    stats = online.writer.write("card_features", card_rows([], []))
    assert (stats.rows, stats.entities, stats.written) == (0, 0, 0)
    assert online.writer.write_batches("card_features", iter([])).rows == 0


def test_a_store_that_was_never_applied_is_reported(online: Online, tmp_path: Path) -> None:
    writer = SqliteOnlineWriter(tmp_path / "missing" / "online.db", online.writer.specs)
    with pytest.raises(OnlineStoreNotReadyError, match="features apply"):
        writer.write("card_features", card_rows(new_cards(1), [T0]))
