"""The training set: point-in-time features (no leakage), the label cut-off, the time split, no lost rows.

A private Feast repository is applied into a temporary state dir and the streaming job's offline layout is
written with pyarrow (``<offline_root>/<view>/batch_id=<N>/part-0.parquet``), so no Spark is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from pipelines.config import ModelSettings, Settings
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.store import apply_repo
from pipelines.testing import isolated_settings
from pipelines.training.dataset import (
    ENTITY_TIMESTAMP,
    IS_TEST,
    IS_VALIDATION,
    TrainingSet,
    build_training_set,
    data_fingerprint,
    historical_features,
    three_way_split,
    time_split,
)
from pipelines.training.errors import InsufficientTrainingDataError, TrainingDataError
from pipelines.training.labels import LABEL, LABEL_TIME

T0 = datetime(2026, 10, 1, tzinfo=UTC)
CUTOFF = T0 + timedelta(days=1)
CARD_FEATURES = [
    "card_txn_count_10m",
    "card_txn_count_1h",
    "card_txn_count_24h",
    "card_amount_sum_1h",
    "card_amount_sum_24h",
    "card_amount_max_24h",
    "card_amount_mean_24h",
    "card_distinct_merchants_24h",
    "card_seconds_since_prev_txn",
]
MERCHANT_FEATURES = ["merchant_txn_count_1h", "merchant_amount_mean_24h"]
LEAKED = 99_999.0  # only ever in feature rows computed after the labelled event


def write_dataset(settings: Settings, name: str, frame: pd.DataFrame, batches: int = 2) -> None:
    """Like the streaming job: one folder per micro-batch, event times as UTC microseconds."""
    ordered = frame.sort_values("event_time").reset_index(drop=True)
    for batch_id, rows in enumerate(np.array_split(np.arange(len(ordered)), batches)):
        table = pa.Table.from_pandas(ordered.iloc[rows], preserve_index=False)
        index = table.schema.get_field_index("event_time")
        table = table.set_column(index, "event_time", table["event_time"].cast(pa.timestamp("us", tz="UTC")))
        folder = feast_paths(settings).offline_root / name / f"batch_id={batch_id}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-0.parquet")


def card_row(card: str, at: datetime, k: int, marker: float) -> dict[str, object]:
    return {
        "card_id": card,
        "event_time": at,
        "card_txn_count_10m": 1,
        "card_txn_count_1h": k + 1,
        "card_txn_count_24h": k + 1,
        "card_amount_sum_1h": marker,
        "card_amount_sum_24h": marker,
        "card_amount_max_24h": marker,
        "card_amount_mean_24h": marker,
        "card_distinct_merchants_24h": 1,
        "card_seconds_since_prev_txn": None if k == 0 else 1800.0,
    }


@dataclass
class Scenario:
    settings: Settings
    events: pd.DataFrame
    labels: pd.DataFrame


def scenario(tmp_path: Path, *, with_lost_event: bool = False) -> Scenario:
    """4 cards x 5 events, 30 minutes apart; each event's own feature rows carry a value unique to it."""
    settings = isolated_settings(tmp_path / "state", models={"validation_fraction": 0.25})
    apply_repo(settings)
    events, cards, merchants = [], [], []
    for i in range(4):
        for k in range(5):
            at = T0 + timedelta(minutes=i + 30 * k)
            event_id, merchant, marker = f"e{i}{k}", f"m{k % 2}", float(100 * i + k)
            events.append({"event_id": event_id, "card_id": f"c{i}", "merchant_id": merchant, "event_time": at})
            cards.append(card_row(f"c{i}", at, k, marker))
            merchants.append(
                {
                    "merchant_id": merchant,
                    "event_time": at,
                    "merchant_txn_count_1h": k,
                    "merchant_amount_mean_24h": marker,
                }
            )
    # Rows computed from events a millisecond after e00 (card c0, merchant m0): a later event's features.
    later = T0 + timedelta(milliseconds=1)
    events.append({"event_id": "late-c0", "card_id": "c0", "merchant_id": "m0", "event_time": later})
    cards.append({**card_row("c0", later, 1, LEAKED), "card_txn_count_10m": 777})
    merchants.append(
        {"merchant_id": "m0", "event_time": later, "merchant_txn_count_1h": 777, "merchant_amount_mean_24h": LEAKED}
    )
    if with_lost_event:  # an event whose card has feature rows only after it: Feast 0.67 drops the entity row
        events.append({"event_id": "lost", "card_id": "c9", "merchant_id": "m0", "event_time": T0 + timedelta(hours=5)})
        cards.append(card_row("c9", T0 + timedelta(hours=6), 0, 1.0))
    write_dataset(settings, "card_features", pd.DataFrame(cards))
    write_dataset(settings, "merchant_features", pd.DataFrame(merchants))
    events_frame = pd.DataFrame(events)
    write_dataset(settings, "events", events_frame.assign(amount=1.0, currency="EUR"))

    labelled = events_frame[events_frame["event_id"] != "late-c0"]
    labels = pd.DataFrame(
        {
            "event_id": labelled["event_id"],
            LABEL: [int(k % 2 == 1) for k in range(len(labelled))],
            LABEL_TIME: labelled["event_time"] + timedelta(hours=1),
        }
    )
    extra = pd.DataFrame(
        [
            # e00: first confirmed genuine, then a chargeback arrives, still before the cut-off: the latest wins.
            {"event_id": "e00", LABEL: 1, LABEL_TIME: T0 + timedelta(hours=3)},
            # e11 (labelled genuine): a chargeback known only after the cut-off: not used.
            {"event_id": "e11", LABEL: 1, LABEL_TIME: CUTOFF + timedelta(seconds=1)},
            # A label for an event the stream never saw (dead-lettered, say).
            {"event_id": "unknown", LABEL: 1, LABEL_TIME: T0 + timedelta(hours=2)},
        ]
    )
    labels = pd.concat([labels, extra], ignore_index=True)
    return Scenario(settings, events_frame, labels)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, TrainingSet]:
    case = scenario(tmp_path_factory.mktemp("dataset"))
    return case, build_training_set(case.settings, case.labels, CUTOFF)


def test_no_feature_row_from_after_the_labelled_event_reaches_training(built: tuple[Scenario, TrainingSet]) -> None:
    _, training_set = built
    frame = training_set.frame
    first = frame.set_index("event_id").loc["e00"]
    # e00's own row (marker 0.0), not the row computed a millisecond later (99,999 and 777).
    assert first["card_amount_max_24h"] == 0.0
    assert first["card_txn_count_10m"] == 1
    assert first["merchant_amount_mean_24h"] == 0.0
    assert first["merchant_txn_count_1h"] == 0
    features = list(training_set.feature_names)
    assert not (frame[features] == LEAKED).any().any()
    assert not (frame[features] == 777).any().any()


def test_every_row_carries_its_own_events_features(built: tuple[Scenario, TrainingSet]) -> None:
    _, training_set = built
    frame = training_set.frame
    # Each event's own rows carry 100 * card + k in every amount feature (see scenario()).
    expected = frame["event_id"].str[1].astype(int) * 100 + frame["event_id"].str[2].astype(int)
    assert (frame["card_amount_sum_24h"] == expected).all()
    assert (frame["merchant_amount_mean_24h"] == expected).all()
    assert frame["card_seconds_since_prev_txn"].isna().sum() == 4  # each card's first event: null stays null
    assert list(training_set.feature_names) == CARD_FEATURES + MERCHANT_FEATURES


def test_only_labels_known_at_the_cutoff_are_used(built: tuple[Scenario, TrainingSet]) -> None:
    _, training_set = built
    labels = training_set.frame.set_index("event_id")[LABEL]
    assert labels["e00"] == 1  # the later of two known labels
    assert labels["e11"] == 0  # its chargeback came after the cut-off
    assert (training_set.frame[LABEL_TIME] <= pd.Timestamp(CUTOFF)).all()
    stats = training_set.stats
    assert (stats.labels, stats.after_cutoff, stats.superseded, stats.without_event) == (23, 1, 1, 1)
    assert stats.rows == 20 == len(training_set.frame)
    assert "late-c0" not in set(training_set.frame["event_id"])


def test_the_latest_events_test_and_those_just_before_them_validate(built: tuple[Scenario, TrainingSet]) -> None:
    _, training_set = built
    train, validation, test = training_set.train, training_set.validation, training_set.test
    assert training_set.test_start is not None
    validation_start, test_start = pd.Timestamp(training_set.validation_start), pd.Timestamp(training_set.test_start)
    assert (train["event_time"] < validation_start).all()
    assert validation["event_time"].between(validation_start, test_start, inclusive="left").all()
    assert (test["event_time"] >= test_start).all()
    # 20 labelled events: the latest 20% test, then 25% of all validate (5 of the 16 left), 11 train.
    assert (len(train), len(validation), len(test)) == (11, 5, 4)
    assert training_set.frame["event_time"].is_monotonic_increasing
    for split in (train, validation, test):
        assert 0 < split[LABEL].sum() < len(split)


def test_without_a_test_fraction_the_latest_events_validate(tmp_path: Path) -> None:
    case = scenario(tmp_path)
    settings = case.settings.model_copy(
        update={"models": case.settings.models.model_copy(update={"test_fraction": 0.0})}
    )
    training_set = build_training_set(settings, case.labels, CUTOFF)
    assert training_set.test_start is None and training_set.test.empty and IS_TEST not in training_set.frame
    assert (len(training_set.train), len(training_set.validation)) == (15, 5)


def test_three_way_split_keeps_equal_times_together_at_both_boundaries() -> None:
    days = ["01", "02", "03", "04", "05", "05", "06", "07", "07", "08"]
    times = pd.Series(pd.to_datetime([f"2026-01-{d}" for d in days], utc=True))
    validation_start, validation, test_start, test = three_way_split(times, 0.2, 0.2)
    # 20% of 10 rows is 2, but both 07s test; then 25% of the 7 left is 2, but both 05s validate.
    assert test_start == pd.Timestamp("2026-01-07", tz="UTC")
    assert test.tolist() == [False] * 7 + [True] * 3
    assert validation_start == pd.Timestamp("2026-01-05", tz="UTC")
    assert validation.tolist() == [False] * 4 + [True] * 3 + [False] * 3
    assert not (validation & test).any()
    none_start, no_validation_change, no_test_start, no_test = three_way_split(times, 0.2, 0.0)
    assert no_test_start is None and not no_test.any()
    assert (none_start, no_validation_change.tolist()) == (pd.Timestamp("2026-01-07", tz="UTC"), test.tolist())


def test_validation_and_test_shares_must_leave_rows_to_train() -> None:
    with pytest.raises(ValidationError, match="nothing would be left to train on"):
        ModelSettings(validation_fraction=0.5, test_fraction=0.5)
    assert ModelSettings(validation_fraction=0.5, test_fraction=0.0).test_fraction == 0.0


def test_an_event_without_its_own_feature_row_is_an_error(tmp_path: Path) -> None:
    case = scenario(tmp_path, with_lost_event=True)
    labels = pd.concat(
        [case.labels, pd.DataFrame([{"event_id": "lost", LABEL: 1, LABEL_TIME: T0 + timedelta(hours=7)}])],
        ignore_index=True,
    )
    with pytest.raises(TrainingDataError, match=r"1 labelled event\(s\) have no card_features row .*'lost'"):
        build_training_set(case.settings, labels, CUTOFF)


class DroppingStore:
    """Feast's file offline store on an entity row with no feature row before it: the row just vanishes."""

    def get_feature_service(self, name: str, allow_cache: bool = False) -> str:
        return name

    def get_historical_features(self, entity_df: pd.DataFrame, features: object) -> SimpleNamespace:
        return SimpleNamespace(to_df=lambda: entity_df.iloc[1:].assign(f=1.0))


def test_a_row_lost_in_the_join_is_an_error_not_a_smaller_training_set() -> None:
    entity_df = pd.DataFrame({"event_id": ["a", "b"], "card_id": ["c", "c"], ENTITY_TIMESTAMP: [T0, T0]})
    with pytest.raises(TrainingDataError, match=r"returned 1 rows for 2 labelled events \(1 missing, e.g. \['a'\]\)"):
        historical_features(DroppingStore(), "fraud_model_v1", entity_df, "event_id")  # type: ignore[arg-type]


def test_no_events_in_the_offline_store_is_a_clear_error(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    apply_repo(settings)
    labels = pd.DataFrame({"event_id": ["a"], LABEL: [1], LABEL_TIME: [pd.Timestamp(T0)]})
    with pytest.raises(TrainingDataError, match="run the streaming job"):
        build_training_set(settings, labels, CUTOFF)


def test_time_split_keeps_equal_times_together() -> None:
    times = pd.Series(pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-03", "2026-01-04"], utc=True))
    start, mask = time_split(times, 0.4)
    assert start == pd.Timestamp("2026-01-03", tz="UTC")
    assert mask.tolist() == [False, False, True, True, True]
    with pytest.raises(InsufficientTrainingDataError):
        time_split(pd.Series([pd.Timestamp(T0)] * 3), 0.5)


def test_the_fingerprint_ignores_row_order_and_sees_every_value() -> None:
    frame = pd.DataFrame(
        {"event_id": ["a", "b", "c"], LABEL: [0, 1, 0], IS_VALIDATION: [False, False, True], "f": [1.0, np.nan, 3.0]}
    )
    fingerprint = data_fingerprint(frame, ["f"], "event_id")
    assert data_fingerprint(frame.iloc[::-1], ["f"], "event_id") == fingerprint
    assert data_fingerprint(frame.assign(f=[1.0, np.nan, 3.5]), ["f"], "event_id") != fingerprint
    assert data_fingerprint(frame.assign(**{LABEL: [1, 1, 0]}), ["f"], "event_id") != fingerprint
    assert data_fingerprint(frame.assign(**{IS_VALIDATION: [False, True, True]}), ["f"], "event_id") != fingerprint
    assert data_fingerprint(frame.assign(**{IS_TEST: [False, False, False]}), ["f"], "event_id") != fingerprint
