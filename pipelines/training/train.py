"""Fit the XGBoost classifier on a :class:`~pipelines.training.dataset.TrainingSet` and measure it.

- ``tree_method="hist"``; missing features (a card's first event has no "seconds since previous") stay NaN,
  XGBoost's own missing value, so the model learns where to send them instead of being fed a made-up number.
- Imbalance: when genuine events are labelled only in part (``models.genuine_label_fraction`` < 1), each
  labelled genuine row is weighted by the inverse of that fraction, so the model sees traffic's class balance
  and its scores estimate the fraud probability in traffic (what an alert threshold needs). Otherwise
  ``scale_pos_weight`` = negatives / positives: scores then rank well but overstate the probability.
- Early stopping on the validation split's PR-AUC (the metric that matters with rare positives); the booster
  is cut to its best iteration before it is returned, so whoever loads the saved model scores with exactly the
  trees that were validated, with no "best_iteration" to remember.
- The alert threshold: ``models.alert_threshold``, or (``threshold_policy = "best_f1"``) the validation score with
  the highest F1, genuine rows counted as the traffic they stand for; the metrics of every split are taken at it,
  with the same weights (:mod:`pipelines.training.metrics`), and the version records both threshold and policy.
  Early stopping and the threshold are both chosen on the validation split, so its figures flatter the model;
  the test split (the latest events, :mod:`pipelines.training.dataset`) took part in neither choice.
- Progress: an XGBoost callback reports every round (validation metrics so far) to an optional function, so
  the CLI can draw a progress bar and the library imports no terminal code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from pipelines.config import ModelSettings
from pipelines.models.metadata import EvaluationMetrics, RowCounts, TrainingSummary
from pipelines.training.dataset import TrainingSet, feature_matrix
from pipelines.training.labels import LABEL
from pipelines.training.metrics import best_f1_threshold, evaluate

EVAL_METRICS = ("logloss", "auc", "aucpr")
"""Reported every round for both splits; the last one (PR-AUC) drives early stopping."""


@dataclass(frozen=True)
class RoundProgress:
    """One boosting round, as the progress callback sees it."""

    iteration: int
    max_rounds: int
    validation: dict[str, float]
    best_iteration: int | None


ProgressFunction = Callable[[RoundProgress], None]


@dataclass(frozen=True)
class TrainedModel:
    """The booster (cut to its best iteration) and everything the registry records about it."""

    booster: xgb.Booster
    summary: TrainingSummary
    history: dict[str, dict[str, list[float]]]

    @property
    def validation(self) -> EvaluationMetrics:
        return self.summary.validation_metrics


def genuine_row_weights(labels: np.ndarray, genuine_label_fraction: float) -> np.ndarray | None:
    """Inverse-sampling weights (1 for fraud, 1/fraction for genuine), or None when every event is labelled."""
    if genuine_label_fraction >= 1.0:
        return None
    return np.where(labels == 1, 1.0, 1.0 / genuine_label_fraction)


def alert_threshold(models: ModelSettings, validation_labels: np.ndarray, validation_scores: np.ndarray) -> float:
    """The version's alert threshold: ``models.alert_threshold``, or under ``best_f1`` the validation score with
    the highest F1, genuine rows counted as the traffic they stand for (a fixed 0.5 suits one model's scores and
    not the next one's: the demo's recall at 0.5 ranged from 0.30 to 0.85 between runs)."""
    if models.threshold_policy == "fixed":
        return models.alert_threshold
    chosen = best_f1_threshold(validation_labels, validation_scores, negative_weight=models.negative_weight)
    if chosen is None:  # the split guarantees positives; kept total for a caller that does not
        return models.alert_threshold
    return chosen


def training_params(models: ModelSettings, positives: int, negatives: int) -> dict[str, Any]:
    """XGBoost parameters; deterministic (no row or column sampling, a fixed seed)."""
    reweighted = models.genuine_label_fraction < 1.0
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": models.max_depth,
        "eta": models.learning_rate,
        "min_child_weight": 1.0,
        "scale_pos_weight": 1.0 if reweighted else negatives / positives,
        "eval_metric": list(EVAL_METRICS),
        "seed": 0,
        "nthread": max(1, min(4, os.cpu_count() or 1)),
    }


def train_model(
    training_set: TrainingSet, models: ModelSettings, *, progress: ProgressFunction | None = None
) -> TrainedModel:
    """Train, early-stop on validation, set the alert threshold (:func:`alert_threshold`), evaluate every split
    at it."""
    names = list(training_set.feature_names)
    train, validation, test = training_set.train, training_set.validation, training_set.test
    y_train = train[LABEL].to_numpy(dtype=np.int8)
    y_validation = validation[LABEL].to_numpy(dtype=np.int8)
    fraction = models.genuine_label_fraction
    d_train = xgb.DMatrix(
        feature_matrix(train, names), label=y_train, weight=genuine_row_weights(y_train, fraction), feature_names=names
    )
    d_validation = xgb.DMatrix(
        feature_matrix(validation, names),
        label=y_validation,
        weight=genuine_row_weights(y_validation, fraction),
        feature_names=names,
    )
    positives = int(y_train.sum())
    params = training_params(models, positives, len(y_train) - positives)

    history: dict[str, Any] = {}
    callbacks = [_ProgressCallback(progress, models.num_boost_round)] if progress is not None else []
    booster = xgb.train(
        params,
        d_train,
        num_boost_round=models.num_boost_round,
        evals=[(d_train, "train"), (d_validation, "validation")],
        early_stopping_rounds=models.early_stopping_rounds,
        evals_result=history,
        verbose_eval=False,
        callbacks=callbacks,
    )
    best = int(booster.best_iteration)
    booster = booster[: best + 1]  # keep the validated trees only
    validation_scores = booster.predict(d_validation)
    threshold = alert_threshold(models, y_validation, validation_scores)
    train_metrics = evaluate(y_train, booster.predict(d_train), threshold, negative_weight=models.negative_weight)
    validation_metrics = evaluate(y_validation, validation_scores, threshold, negative_weight=models.negative_weight)
    y_test = test[LABEL].to_numpy(dtype=np.int8)
    test_metrics = None
    if len(test):
        test_scores = booster.predict(xgb.DMatrix(feature_matrix(test, names), feature_names=names))
        test_metrics = evaluate(y_test, test_scores, threshold, negative_weight=models.negative_weight)
    start, end = training_set.window
    summary = TrainingSummary(
        feature_names=training_set.feature_names,
        feature_service=training_set.feature_service,
        label_column=models.label_column,
        training_window_start=start,
        training_window_end=end,
        validation_start=training_set.validation_start,
        test_start=training_set.test_start,
        label_cutoff=training_set.label_cutoff,
        rows=RowCounts(
            train=len(train),
            validation=len(validation),
            train_positives=positives,
            validation_positives=int(y_validation.sum()),
            test=len(test),
            test_positives=int(y_test.sum()),
        ),
        data_fingerprint=training_set.fingerprint,
        alert_threshold=threshold,
        threshold_policy=models.threshold_policy,
        best_iteration=best,
        params={
            **params,
            "num_boost_round": models.num_boost_round,
            "early_stopping_rounds": models.early_stopping_rounds,
        },
        train_metrics=train_metrics,
        validation_metrics=validation_metrics,
        test_metrics=test_metrics,
    )
    return TrainedModel(booster=booster, summary=summary, history=history)


class _ProgressCallback(xgb.callback.TrainingCallback):
    """Forwards each round's latest validation metrics to a progress function."""

    def __init__(self, progress: ProgressFunction, max_rounds: int) -> None:
        super().__init__()
        self.progress = progress
        self.max_rounds = max_rounds

    def after_iteration(
        self, model: xgb.Booster, epoch: int, evals_log: xgb.callback.TrainingCallback.EvalsLog
    ) -> bool:
        # Without cross-validation each entry is a plain float (with it, a (mean, std) pair: keep the mean).
        latest = {
            metric: float(value[0] if isinstance(value, tuple) else value)
            for metric, values in evals_log.get("validation", {}).items()
            for value in values[-1:]
        }
        best = model.attr("best_iteration")
        self.progress(RoundProgress(epoch, self.max_rounds, latest, int(best) if best is not None else None))
        return False
