"""Request-time features against the stream's own computation (compute_window_features) on the same events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.serving.request_features import features_at_request
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory, compute_window_features

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def events(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    """(seconds after T0, amount, merchant) rows of card c1 at merchant m*."""
    return pd.DataFrame(
        {
            "card_id": ["c1"] * len(rows),
            "merchant_id": [merchant for _, _, merchant in rows],
            "amount": [amount for _, amount, _ in rows],
            "event_time_ms": [int((T0 + timedelta(seconds=s)).timestamp() * 1000) for s, _, _ in rows],
        }
    )


def stream_features(features: EntityFeatureSet, frame: pd.DataFrame) -> dict[str, float]:
    """The stream's features of the last row of ``frame`` (every earlier row is history)."""
    computed, _ = compute_window_features(features, EntityHistory.empty(features), frame)
    return computed.iloc[-1][features.feature_names].to_dict()


def stored_and_request(history: list[tuple[float, float, str]], new: tuple[float, float, str]) -> tuple:
    stored = stream_features(CARD_FEATURES, events(history))
    stored = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in stored.items()}
    want = stream_features(CARD_FEATURES, events([*history, new]))
    got = features_at_request(
        CARD_FEATURES,
        stored,
        T0 + timedelta(seconds=history[-1][0]),
        {"amount": new[1], "merchant_id": new[2]},
        T0 + timedelta(seconds=new[0]),
    )
    return got, want


def test_an_unknown_entity_gets_the_streams_first_event_features_exactly() -> None:
    want = stream_features(CARD_FEATURES, events([(0, 42.0, "m1")]))
    got = features_at_request(CARD_FEATURES, None, None, {"amount": 42.0, "merchant_id": "m1"}, T0)
    assert set(got.basis.values()) == {"exact"}
    for name, value in want.items():
        if np.isnan(value):
            assert got.values[name] is None, name
        else:
            assert got.values[name] == pytest.approx(value), name


def test_folding_equals_the_stream_when_no_event_left_a_window() -> None:
    # Every earlier event is within the last 5 minutes: no window (>= 10 minutes) has lost one.
    history = [(0, 10.0, "m1"), (60, 30.0, "m2"), (200, 5.0, "m1")]
    got, want = stored_and_request(history, (290, 100.0, "m3"))
    for name, value in want.items():
        if got.basis[name] == "stored":
            continue
        assert got.values[name] == pytest.approx(value), name
    assert got.basis["card_seconds_since_prev_txn"] == "exact"
    assert got.basis["card_txn_count_10m"] == got.basis["card_amount_mean_24h"] == "folded"
    # A distinct count cannot be folded from a count: it is served as stored (here the event's merchant is new).
    assert got.basis["card_distinct_merchants_24h"] == "stored"
    assert got.values["card_distinct_merchants_24h"] == want["card_distinct_merchants_24h"] - 1


def test_windows_the_stored_events_have_all_left_are_exact() -> None:
    history = [(0, 10.0, "m1"), (30, 20.0, "m1")]
    got, want = stored_and_request(history, (30 + 2 * 3600, 7.0, "m1"))  # two hours later
    for name in ("card_txn_count_10m", "card_txn_count_1h", "card_amount_sum_1h", "card_seconds_since_prev_txn"):
        assert got.basis[name] == "exact"
        assert got.values[name] == pytest.approx(want[name]), name
    for name in ("card_txn_count_24h", "card_amount_sum_24h", "card_amount_max_24h", "card_amount_mean_24h"):
        assert got.basis[name] == "folded"
        assert got.values[name] == pytest.approx(want[name]), name


def test_folding_over_counts_events_that_left_the_window_since_the_stored_event() -> None:
    # The event at 0 s is in the stored 10-minute window (as of 500 s) but not in the request's (as of 700 s).
    history = [(0, 10.0, "m1"), (500, 20.0, "m1")]
    got, want = stored_and_request(history, (700, 1.0, "m1"))
    assert got.basis["card_txn_count_10m"] == "folded"
    assert got.values["card_txn_count_10m"] == want["card_txn_count_10m"] + 1  # the documented upper bound


def test_a_request_older_than_the_stored_event_serves_the_stored_values() -> None:
    history = [(0, 10.0, "m1"), (100, 20.0, "m1")]
    stored = stream_features(CARD_FEATURES, events(history))
    got = features_at_request(
        CARD_FEATURES, stored, T0 + timedelta(seconds=100), {"amount": 5.0, "merchant_id": "m1"}, T0
    )
    assert set(got.basis.values()) == {"stored"}
    assert got.values == stored


def test_a_mean_without_a_count_over_its_window_is_served_as_stored() -> None:
    stored = {"merchant_txn_count_1h": 4, "merchant_amount_mean_24h": 12.0}
    got = features_at_request(MERCHANT_FEATURES, stored, T0, {"amount": 100.0}, T0 + timedelta(minutes=5))
    assert got.values == {"merchant_txn_count_1h": 5, "merchant_amount_mean_24h": 12.0}
    assert got.basis == {"merchant_txn_count_1h": "folded", "merchant_amount_mean_24h": "stored"}
