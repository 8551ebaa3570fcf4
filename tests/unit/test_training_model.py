"""XGBoost training on a small synthetic training set: early stopping, progress, metrics, registry round trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from pipelines.config import ModelSettings
from pipelines.models import ModelRegistry
from pipelines.training.dataset import IS_TEST, IS_VALIDATION, DatasetStats, TrainingSet, data_fingerprint
from pipelines.training.labels import LABEL
from pipelines.training.metrics import best_f1_threshold, evaluate, precision_recall_at
from pipelines.training.train import RoundProgress, TrainedModel, alert_threshold, train_model

T0 = datetime(2026, 10, 1, tzinfo=UTC)
FEATURES = ("velocity", "amount", "noise")
Trained = tuple[TrainingSet, TrainedModel, list[RoundProgress]]


def synthetic_set(rows: int = 600, seed: int = 3) -> TrainingSet:
    """Fraud is fast and large (with overlap), a third of it; the last 25% of event times validate."""
    rng = np.random.default_rng(seed)
    label = rng.random(rows) < 0.3
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i:04d}" for i in range(rows)],
            "event_time": [T0 + timedelta(minutes=i) for i in range(rows)],
            "velocity": rng.poisson(np.where(label, 6, 2)).astype(float),
            "amount": rng.lognormal(np.where(label, 5.0, 4.0), 0.8),
            "noise": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)),
            LABEL: label.astype(np.int8),
        }
    )
    frame[IS_VALIDATION] = np.arange(rows) >= int(rows * 0.75)
    start = frame.loc[frame[IS_VALIDATION], "event_time"].min()
    return TrainingSet(
        frame=frame,
        feature_names=FEATURES,
        feature_service="synthetic_v1",
        event_id_column="event_id",
        event_time_column="event_time",
        label_cutoff=T0 + timedelta(days=2),
        validation_start=start.to_pydatetime(),
        fingerprint=data_fingerprint(frame, FEATURES, "event_id"),
        stats=DatasetStats(labels=rows, after_cutoff=0, superseded=0, without_event=0, label_before_event=0, rows=rows),
    )


@pytest.fixture(scope="module")
def trained() -> tuple[TrainingSet, TrainedModel, list[RoundProgress]]:
    training_set = synthetic_set()
    rounds: list[RoundProgress] = []
    settings = ModelSettings(num_boost_round=300, early_stopping_rounds=15, max_depth=3)
    return training_set, train_model(training_set, settings, progress=rounds.append), rounds


def test_training_stops_early_and_keeps_only_the_validated_trees(trained: Trained) -> None:
    _, model, rounds = trained
    best = model.summary.best_iteration
    assert best + 1 < 300  # stopped early
    assert model.booster.num_boosted_rounds() == best + 1
    assert len(rounds) == best + 1 + 15  # every round reported, up to the patience limit
    assert [r.iteration for r in rounds] == list(range(len(rounds)))
    assert {"logloss", "auc", "aucpr"} <= set(rounds[-1].validation)
    assert rounds[-1].max_rounds == 300


def test_the_summary_matches_the_data_and_the_model(trained: Trained) -> None:
    training_set, model, _ = trained
    summary = model.summary
    train, validation = training_set.train, training_set.validation
    assert summary.feature_names == FEATURES
    assert summary.rows.train == len(train) == 450 and summary.rows.validation == len(validation) == 150
    assert summary.rows.train_positives == int(train[LABEL].sum())
    positives = int(train[LABEL].sum())
    assert summary.params["scale_pos_weight"] == pytest.approx((len(train) - positives) / positives)
    assert summary.params["tree_method"] == "hist"
    assert summary.training_window_start == T0 and summary.data_fingerprint == training_set.fingerprint

    matrix = xgb.DMatrix(validation[list(FEATURES)].to_numpy(dtype=float), feature_names=list(FEATURES))
    expected = evaluate(validation[LABEL].to_numpy(), model.booster.predict(matrix), summary.alert_threshold)
    assert summary.validation_metrics == expected
    assert summary.validation_metrics.roc_auc is not None and summary.validation_metrics.roc_auc > 0.8


def test_a_registered_model_scores_exactly_like_the_trained_one(trained: Trained, tmp_path: Path) -> None:
    training_set, model, _ = trained
    registry = ModelRegistry(tmp_path)
    version = registry.register(model.booster, model.summary)
    loaded = registry.load_booster(version.version)
    matrix = xgb.DMatrix(training_set.frame[list(FEATURES)].to_numpy(dtype=float), feature_names=list(FEATURES))
    np.testing.assert_array_equal(loaded.predict(matrix), model.booster.predict(matrix))
    assert version.metadata.training.validation_metrics == model.summary.validation_metrics


def _f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    _, precision, recall = precision_recall_at(labels, scores, threshold)
    return 0.0 if not precision or not recall else 2 * precision * recall / (precision + recall)


def test_best_f1_sets_the_threshold_on_the_validation_split(trained: Trained) -> None:
    training_set, model, _ = trained
    validation = training_set.validation
    labels = validation[LABEL].to_numpy()
    matrix = xgb.DMatrix(validation[list(FEATURES)].to_numpy(dtype=float), feature_names=list(FEATURES))
    scores = model.booster.predict(matrix)
    assert model.summary.threshold_policy == "fixed" and model.summary.alert_threshold == 0.5
    assert alert_threshold(ModelSettings(alert_threshold=0.3), labels, scores) == 0.3
    chosen = alert_threshold(ModelSettings(threshold_policy="best_f1"), labels, scores)
    assert chosen == best_f1_threshold(labels, scores)
    assert all(_f1(labels, scores, chosen) >= _f1(labels, scores, t) for t in (0.1, 0.3, 0.5, 0.7, 0.9))


def test_a_version_trained_under_best_f1_records_its_chosen_threshold() -> None:
    training_set = synthetic_set(seed=5)
    settings = ModelSettings(num_boost_round=100, max_depth=3, threshold_policy="best_f1", genuine_label_fraction=0.5)
    model = train_model(training_set, settings)
    summary, validation = model.summary, training_set.validation
    matrix = xgb.DMatrix(validation[list(FEATURES)].to_numpy(dtype=float), feature_names=list(FEATURES))
    expected = best_f1_threshold(validation[LABEL].to_numpy(), model.booster.predict(matrix), negative_weight=2.0)
    assert summary.threshold_policy == "best_f1" and summary.alert_threshold == expected
    assert summary.validation_metrics.threshold == summary.alert_threshold == summary.train_metrics.threshold
    assert summary.validation_metrics.negative_weight == summary.train_metrics.negative_weight == 2.0


def with_test_split(training_set: TrainingSet, share: float = 0.2) -> TrainingSet:
    """The same rows, the latest ``share`` of the validation ones testing instead."""
    frame = training_set.frame.copy()
    rows = len(frame)
    frame[IS_TEST] = np.arange(rows) >= int(rows * (1 - share))
    frame[IS_VALIDATION] &= ~frame[IS_TEST]
    test_start = frame.loc[frame[IS_TEST], "event_time"].min().to_pydatetime()
    return replace(training_set, frame=frame, test_start=test_start)


def test_the_test_split_is_measured_at_the_threshold_validation_chose_and_takes_no_part_in_choosing() -> None:
    training_set = with_test_split(synthetic_set(seed=5))
    settings = ModelSettings(num_boost_round=100, max_depth=3, threshold_policy="best_f1")
    model = train_model(training_set, settings)
    summary, test = model.summary, training_set.test
    assert (summary.rows.train, summary.rows.validation, summary.rows.test) == (450, 30, 120)
    assert summary.rows.test_positives == int(test[LABEL].sum()) > 0
    assert summary.test_start == training_set.test_start
    matrix = xgb.DMatrix(test[list(FEATURES)].to_numpy(dtype=float), feature_names=list(FEATURES))
    expected = evaluate(test[LABEL].to_numpy(), model.booster.predict(matrix), summary.alert_threshold)
    assert summary.test_metrics == expected

    # Flipping every test label changes the test figures only: the trees and the threshold come from elsewhere.
    frame = training_set.frame.copy()
    frame.loc[frame[IS_TEST], LABEL] = 1 - frame.loc[frame[IS_TEST], LABEL]
    flipped = train_model(replace(training_set, frame=frame), settings).summary
    assert flipped.alert_threshold == summary.alert_threshold and flipped.best_iteration == summary.best_iteration
    assert flipped.validation_metrics == summary.validation_metrics
    assert flipped.test_metrics is not None and summary.test_metrics is not None
    assert flipped.test_metrics.roc_auc == pytest.approx(1 - summary.test_metrics.roc_auc)


def test_without_a_test_split_there_are_no_test_metrics(trained: Trained) -> None:
    _, model, _ = trained
    assert model.summary.test_metrics is None and model.summary.test_start is None
    assert (model.summary.rows.test, model.summary.rows.test_positives) == (0, 0)
