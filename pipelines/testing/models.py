"""A small real XGBoost model in a real registry, for tests and benchmarks that need a production model
without running the streaming job and training first (the integration tests train on streamed features)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.models.registry import ModelRegistry, ModelVersion


def register_synthetic_model(
    settings: Settings, *, promote: bool = True, seed: int = 0, rounds: int = 20, max_depth: int = 3
) -> ModelVersion:
    """Train on synthetic rows of the domain's features (fraud = many recent card events with large amounts),
    register it under the settings' registry and (by default) promote it to production.

    Benchmarks pass the configured ``rounds`` and ``max_depth`` (all rounds kept: no early stopping), so the
    scoring cost is that of a production-sized model; tests keep the small default."""
    import xgboost as xgb

    from pipelines.models.metadata import RowCounts, TrainingSummary
    from pipelines.training.metrics import evaluate

    names = tuple(get_domain(settings.stream.domain).feature_names)
    rng = np.random.default_rng(seed)
    rows = 2_000
    matrix = rng.gamma(2.0, 20.0, size=(rows, len(names)))
    signal = matrix[:, 0] + matrix[:, min(3, len(names) - 1)] / 10
    labels = (signal + rng.normal(0, 10, rows) > np.quantile(signal, 0.9)).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": max_depth, "tree_method": "hist"},
        xgb.DMatrix(matrix, label=labels, feature_names=list(names)),
        num_boost_round=rounds,
    )
    scores = booster.predict(xgb.DMatrix(matrix, feature_names=list(names)))
    metrics = evaluate(labels, scores, threshold=settings.models.alert_threshold)
    at = datetime.now(UTC)
    summary = TrainingSummary(
        feature_names=names,
        feature_service=settings.models.feature_service,
        label_column=settings.models.label_column,
        training_window_start=at,
        training_window_end=at,
        validation_start=at,
        label_cutoff=at,
        rows=RowCounts(train=rows, validation=rows, train_positives=int(labels.sum()), validation_positives=0),
        data_fingerprint="0" * 64,
        alert_threshold=settings.models.alert_threshold,
        best_iteration=rounds - 1,
        params={"tree_method": "hist", "synthetic": True},
        train_metrics=metrics,
        validation_metrics=metrics,
    )
    registry = ModelRegistry.from_settings(settings)
    version = registry.register(booster, summary)
    if promote:
        registry.promote(version.version)
    return version
