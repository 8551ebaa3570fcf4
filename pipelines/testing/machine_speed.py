"""How fast the machine runs at the time of a benchmark, in the unit the scoring benchmarks already report.

The session VM's speed varies from day to day by half or more: the same throughput command on the same code gave
26,884 events/s one day and 18,917 the next. A benchmark figure is only comparable with another when each comes
with the machine's speed at its time, so both scoring benchmarks report bare XGBoost ``inplace_predict`` of their
model on random rows with one thread (the scorer's own setting), in events per core-second.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xgboost as xgb


def predict_matrix(rows: int, features: int, seed: int = 0) -> np.ndarray:
    """Random positive feature rows (lognormal, like counts and amounts), the same for the same arguments."""
    if rows < 1 or features < 1:
        raise ValueError(f"a prediction matrix needs at least one row and one feature, got {rows} x {features}")
    return np.random.default_rng(seed).lognormal(1.0, 1.0, size=(rows, features))


def bare_predict_rate(booster: xgb.Booster, matrix: np.ndarray, repeats: int, threads: int = 1) -> float:
    """Events per core-second of ``inplace_predict`` on ``matrix``, ``repeats`` times, after one untimed call
    (XGBoost prepares its predictor on the first). ``threads`` is set on the booster before timing."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    booster.set_param({"nthread": threads})
    booster.inplace_predict(matrix)
    clock = time.perf_counter()
    for _ in range(repeats):
        booster.inplace_predict(matrix)
    return repeats * len(matrix) / (time.perf_counter() - clock) / threads
