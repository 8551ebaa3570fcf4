"""Offline writes as the stream's executors do them: a file per (batch, partition), replay-safe, read
point-in-time-correctly by Feast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import Settings
from pipelines.feast_io.offline import offline_batch_path, write_offline_part
from pipelines.feast_io.paths import offline_view_path
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.testing import isolated_settings

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CARD_SCHEMA = (
    "card_id string, event_time timestamp, card_txn_count_10m long, card_txn_count_1h long, "
    "card_txn_count_24h long, card_amount_sum_1h double, card_amount_sum_24h double, card_amount_max_24h double, "
    "card_amount_mean_24h double, card_distinct_merchants_24h long, card_seconds_since_prev_txn double"
)
CARD_FEATURES = [column.split()[0] for column in CARD_SCHEMA.split(", ")[2:]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = isolated_settings(tmp_path / "state")
    apply_repo(settings)
    return settings


def card_events(cards: int, events_per_card: int, seed: int) -> pd.DataFrame:
    """Feature rows as the stream would emit them: per card, event n has count n and recognisable values."""
    rng = np.random.default_rng(seed)
    rows = []
    for card in range(cards):
        offsets = np.sort(rng.choice(86_400_000, events_per_card, replace=False))  # distinct milliseconds
        for n, offset in enumerate(offsets, start=1):
            previous = None if n == 1 else float(offset - offsets[n - 2]) / 1000
            amount = float(rng.normal(50, 20))
            event_time = T0 + timedelta(milliseconds=int(offset))
            features = (n, n, n, amount, amount * n, amount + n, amount / n, n % 5, previous)
            rows.append((f"c{card}", event_time, *features))
    return pd.DataFrame(rows, columns=["card_id", "event_time", *CARD_FEATURES])


def arrow_rows(frame: pd.DataFrame) -> pa.Table:
    """Rows as Spark hands them to ``mapInArrow``: UTC microsecond timestamps, nullable numbers."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.set_column(1, "event_time", table.column("event_time").cast(pa.timestamp("us", tz="UTC")))


def batch_parts(ordered: pd.DataFrame, batches: int) -> list[pd.DataFrame]:
    return [ordered.iloc[positions] for positions in np.array_split(np.arange(len(ordered)), batches)]


def write_in_batches(settings: Settings, events: pd.DataFrame, batches: int, partitions: int = 2) -> None:
    """Rows split into micro-batches by event time, each split over partitions, written like the stream does."""
    ordered = events.sort_values("event_time").reset_index(drop=True)
    for batch_id, part in enumerate(batch_parts(ordered, batches)):
        for partition, rows in enumerate(batch_parts(part, partitions)):
            write_offline_part(arrow_rows(rows), settings, "card_features", batch_id, partition)


def stored_rows(settings: Settings, view: str) -> pd.DataFrame:
    frame: pd.DataFrame = pq.read_table(str(offline_view_path(settings, view))).to_pandas()
    return frame


def test_a_replayed_batch_adds_no_rows(settings: Settings) -> None:
    events = card_events(cards=5, events_per_card=8, seed=1)
    write_in_batches(settings, events, batches=3)
    before = stored_rows(settings, "card_features")

    # Spark replays batch 1 after a crash: same batch id, same rows in the same partitions (a stateful query
    # pins its shuffle partitions in the checkpoint), so each partition's file is replaced.
    ordered = events.sort_values("event_time").reset_index(drop=True)
    for partition, rows in enumerate(batch_parts(batch_parts(ordered, 3)[1], 2)):
        write_offline_part(arrow_rows(rows), settings, "card_features", 1, partition)

    after = stored_rows(settings, "card_features")
    assert len(before) == len(after) == len(events)
    assert not after.duplicated(subset=["card_id", "event_time"]).any()
    folder = Path(offline_batch_path(settings, "card_features", 1))
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]


def test_event_times_are_stored_as_utc(settings: Settings) -> None:
    write_in_batches(settings, card_events(cards=1, events_per_card=2, seed=2), batches=1)
    event_time = pq.read_table(offline_batch_path(settings, "card_features", 0)).schema.field("event_time")
    assert str(event_time.type) == "timestamp[us, tz=UTC]"


def test_historical_features_are_point_in_time_correct(settings: Settings) -> None:
    events = card_events(cards=6, events_per_card=10, seed=3)
    write_in_batches(settings, events, batches=4)
    merchants = pd.DataFrame(
        {
            "merchant_id": ["m1", "m1"],
            "event_time": [T0 - timedelta(hours=1), T0 + timedelta(hours=2)],
            "merchant_txn_count_1h": [1, 2],
            "merchant_amount_mean_24h": [12.5, 20.0],
        }
    )
    write_offline_part(arrow_rows(merchants), settings, "merchant_features", 0, 0)

    # Ask at every event time exactly, just before the next event, and days after the last one.
    first = events.groupby("card_id")["event_time"].transform("min")
    asked = pd.concat(
        [
            events[["card_id", "event_time"]],
            events.loc[events["event_time"] > first, ["card_id", "event_time"]].assign(
                event_time=lambda f: f["event_time"] - timedelta(milliseconds=1)
            ),
            events.groupby("card_id", as_index=False)["event_time"]
            .max()
            .assign(event_time=lambda f: f["event_time"] + timedelta(days=3)),
        ]
    ).rename(columns={"event_time": "event_timestamp"})
    entity_df = asked.assign(merchant_id="m1").reset_index(drop=True)
    store = feature_store(settings)

    result = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service("fraud_model_v1")
    ).to_df()

    expected = pd.merge_asof(
        entity_df.sort_values("event_timestamp"),
        events.sort_values("event_time"),
        left_on="event_timestamp",
        right_on="event_time",
        by="card_id",
        direction="backward",
    ).drop(columns=["event_time"])
    expected["merchant_txn_count_1h"] = np.where(expected["event_timestamp"] >= T0 + timedelta(hours=2), 2, 1)
    assert "batch_id" not in result.columns
    assert len(result) == len(entity_df)
    key = ["card_id", "event_timestamp"]
    got = result.sort_values(key).reset_index(drop=True)
    assert got["card_txn_count_1h"].notna().all()  # every asked time follows one of the card's events
    want = expected.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got[[*key, *CARD_FEATURES, "merchant_txn_count_1h"]],
        want[[*key, *CARD_FEATURES, "merchant_txn_count_1h"]],
        check_dtype=False,
    )


def test_an_entity_row_before_the_entitys_first_event_is_kept_with_nulls(settings: Settings) -> None:
    """Feast's file (Dask) store drops such a row instead of returning nulls (its TTL filter runs after the left
    merge); the DuckDB offline store this repository uses keeps it, with nulls."""
    write_in_batches(settings, card_events(cards=1, events_per_card=3, seed=4), batches=2)
    entity_df = pd.DataFrame({"card_id": ["c0"], "event_timestamp": [T0 - timedelta(days=1)]})
    store = feature_store(settings)
    result = store.get_historical_features(entity_df=entity_df, features=["card_features:card_txn_count_1h"]).to_df()
    assert len(result) == 1
    assert result["card_txn_count_1h"].isna().all()


def test_an_unknown_entity_gets_nulls(settings: Settings) -> None:
    """With more than one Parquet file (any streaming layout) Feast's file (Dask) store fails here ("Divisions
    calculation failed"); the DuckDB offline store returns nulls for the unknown entity."""
    write_in_batches(settings, card_events(cards=1, events_per_card=3, seed=5), batches=2)
    entity_df = pd.DataFrame({"card_id": ["c0", "nobody"], "event_timestamp": [T0 + timedelta(days=2)] * 2})
    store = feature_store(settings)
    result = store.get_historical_features(entity_df=entity_df, features=["card_features:card_txn_count_1h"]).to_df()
    assert len(result) == 2
    by_card = result.set_index("card_id")["card_txn_count_1h"]
    assert by_card["nobody"] is None or pd.isna(by_card["nobody"])
    assert not pd.isna(by_card["c0"])
