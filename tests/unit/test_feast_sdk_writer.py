"""The SDK fallback writer guards by reading stored event times first (second precision on SQLite)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import Settings
from pipelines.feast_io.sdk_writer import FeastSdkOnlineWriter
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.testing import isolated_settings

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = isolated_settings(tmp_path / "state")
    apply_repo(settings)
    return settings


def merchant_rows(merchants: list[str], times: list[datetime], count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "merchant_id": merchants,
            "event_time": pd.to_datetime(times, utc=True),
            "merchant_txn_count_1h": [count] * len(merchants),
            "merchant_amount_mean_24h": [count / 2] * len(merchants),
        }
    )


def stored_counts(settings: Settings, merchants: list[str]) -> list[int | None]:
    response = feature_store(settings).get_online_features(
        features=["merchant_features:merchant_txn_count_1h"], entity_rows=[{"merchant_id": m} for m in merchants]
    )
    counts: list[int | None] = response.to_dict()["merchant_txn_count_1h"]
    return counts


def test_newer_rows_are_written_and_older_ones_dropped(settings: Settings) -> None:
    writer = FeastSdkOnlineWriter(settings)
    writer.write("merchant_features", merchant_rows(["m1", "m2"], [T0 + timedelta(minutes=1), T0], count=5))

    later = merchant_rows(["m1", "m2", "m3"], [T0, T0 + timedelta(minutes=1), T0], count=7)
    stats = writer.write("merchant_features", later)

    assert (stats.entities, stats.written, stats.stale) == (3, 2, 1)
    assert stored_counts(settings, ["m1", "m2", "m3"]) == [5, 7, 7]


def test_the_writer_travels_without_its_feature_store(settings: Settings) -> None:
    writer = FeastSdkOnlineWriter(settings)
    writer.write("merchant_features", merchant_rows(["m1"], [T0], count=1))

    copy = pickle.loads(pickle.dumps(writer))

    assert copy.write("merchant_features", merchant_rows(["m1"], [T0 + timedelta(seconds=2)], count=2)).written == 1
    assert stored_counts(settings, ["m1"]) == [2]
