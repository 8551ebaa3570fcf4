"""Labelled genuine rows weighted by the inverse of their sampling fraction: scores estimate traffic's rate."""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from pipelines.config import ModelSettings
from pipelines.training.train import genuine_row_weights, training_params


def test_weights_are_inverse_sampling_for_genuine_rows_only() -> None:
    labels = np.array([1, 0, 0, 1])
    assert genuine_row_weights(labels, 1.0) is None
    np.testing.assert_allclose(genuine_row_weights(labels, 0.02), [1.0, 50.0, 50.0, 1.0])  # type: ignore[arg-type]
    assert training_params(ModelSettings(genuine_label_fraction=0.02), 10, 20)["scale_pos_weight"] == 1.0
    assert training_params(ModelSettings(), 10, 20)["scale_pos_weight"] == 2.0


def test_reweighted_scores_match_the_traffic_fraud_rate() -> None:
    rng = np.random.default_rng(0)
    traffic = 200_000
    x = rng.normal(size=(traffic, 2))
    fraud = rng.random(traffic) < 1 / (1 + np.exp(-(3 * x[:, 0] - 7)))  # ~1-2% fraud, depends on x0
    labelled = fraud | (rng.random(traffic) < 0.02)  # every fraud, 2% of genuine payments
    xs, ys = x[labelled], fraud[labelled].astype(int)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1}
    weighted = xgb.train(params, xgb.DMatrix(xs, label=ys, weight=genuine_row_weights(ys, 0.02)), 60)
    unweighted = xgb.train({**params, "scale_pos_weight": (ys == 0).sum() / ys.sum()}, xgb.DMatrix(xs, label=ys), 60)
    population = xgb.DMatrix(x[:50_000])
    rate = fraud[:50_000].mean()
    assert abs(weighted.predict(population).mean() - rate) < 0.3 * rate
    assert unweighted.predict(population).mean() > 5 * rate
