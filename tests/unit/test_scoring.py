"""Which model scores a batch (alias read per batch, refusals) and scoring in the model's feature order."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from pipelines.domains.card_fraud import CARD_FRAUD
from pipelines.models import ModelRegistry, RowCounts, TrainingSummary
from pipelines.models.registry import registry_root
from pipelines.scoring.model_source import MissingModelFeaturesError, ModelSource
from pipelines.scoring.scorer import score_matrix
from pipelines.testing import isolated_settings
from pipelines.training.metrics import evaluate

FEATURES = ("card_txn_count_10m", "merchant_amount_mean_24h", "card_amount_max_24h")  # not in view order


def _register(registry: ModelRegistry, features: tuple[str, ...], seed: int) -> int:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, len(features)))
    y = (x[:, 0] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "nthread": 1},
        xgb.DMatrix(x, label=y, feature_names=list(features)),
        num_boost_round=4,
    )
    at = datetime(2026, 11, 1, tzinfo=UTC)
    metrics = evaluate(np.array([0, 1]), np.array([0.2, 0.9]), threshold=0.5)
    summary = TrainingSummary(
        feature_names=features,
        feature_service="fraud_model_v1",
        label_column="is_fraud",
        training_window_start=at,
        training_window_end=at,
        validation_start=at,
        label_cutoff=at,
        rows=RowCounts(train=50, validation=10, train_positives=25, validation_positives=5),
        data_fingerprint="a" * 64,
        alert_threshold=0.7,
        best_iteration=3,
        params={},
        train_metrics=metrics,
        validation_metrics=metrics,
    )
    return registry.register(booster, summary).version


@pytest.fixture
def setup(tmp_path: Path) -> tuple[ModelSource, ModelRegistry]:
    settings = isolated_settings(tmp_path)
    registry = ModelRegistry(registry_root(settings), settings.models.model_name)
    return ModelSource(settings, CARD_FRAUD), registry


def test_without_a_production_model_it_says_so_once(
    setup: tuple[ModelSource, ModelRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = setup
    with caplog.at_level(logging.WARNING):
        assert source.for_batch() is None
        assert source.for_batch() is None
    assert sum("NOT scoring" in record.message for record in caplog.records) == 1


def test_a_promotion_takes_effect_at_the_next_batch(setup: tuple[ModelSource, ModelRegistry]) -> None:
    source, registry = setup
    first = _register(registry, FEATURES, seed=1)
    second = _register(registry, FEATURES, seed=2)
    registry.promote(first)
    model = source.for_batch()
    assert model is not None and model.version == first and model.threshold == 0.7
    assert model.feature_names == FEATURES
    registry.promote(second)
    assert source.for_batch().version == second  # type: ignore[union-attr]
    registry.rollback()
    assert source.for_batch().version == first  # type: ignore[union-attr]


def test_a_model_needing_unknown_features_is_refused(setup: tuple[ModelSource, ModelRegistry]) -> None:
    source, registry = setup
    good = _register(registry, FEATURES, seed=1)
    bad = _register(registry, (*FEATURES, "card_distinct_countries_7d"), seed=2)
    registry.promote(bad)
    with pytest.raises(MissingModelFeaturesError, match="card_distinct_countries_7d"):
        source.for_batch()  # at start: a clear error
    registry.promote(good)
    assert source.for_batch().version == good  # type: ignore[union-attr]
    registry.promote(bad)
    assert source.for_batch().version == good  # type: ignore[union-attr]  # later: not rolled out, keeps scoring


def test_scores_use_the_models_feature_order(setup: tuple[ModelSource, ModelRegistry]) -> None:
    source, registry = setup
    registry.promote(_register(registry, FEATURES, seed=3))
    model = source.for_batch()
    assert model is not None
    rng = np.random.default_rng(4)
    values = rng.normal(size=(25, len(FEATURES)))
    # Columns in another order than the model's, plus one it does not use.
    table = pa.table({**{name: values[:, i] for i, name in reversed(list(enumerate(FEATURES)))}, "noise": values[:, 0]})
    booster = xgb.Booster()
    booster.load_model(bytearray(model.model_bytes))
    expected = booster.predict(xgb.DMatrix(values, feature_names=list(FEATURES)))
    np.testing.assert_allclose(score_matrix(model, table), expected, rtol=1e-6)


def test_the_challenger_source_follows_its_own_alias(setup: tuple[ModelSource, ModelRegistry]) -> None:
    production, registry = setup
    challenger = ModelSource(production.settings, CARD_FRAUD, "challenger")
    first = _register(registry, FEATURES, seed=1)
    second = _register(registry, FEATURES, seed=2)
    registry.promote(first)
    assert challenger.for_batch() is None  # no challenger: no shadow scoring, and no warning either
    registry.set_challenger(second)
    assert challenger.for_batch().version == second  # type: ignore[union-attr]
    assert production.for_batch().version == first  # type: ignore[union-attr]
    registry.set_challenger(None)
    assert challenger.for_batch() is None  # cleared: shadow scoring stops at the next batch
    with pytest.raises(ValueError, match="alias must be"):
        ModelSource(production.settings, CARD_FRAUD, "staging")
