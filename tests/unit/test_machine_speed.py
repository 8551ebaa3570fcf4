from __future__ import annotations

import itertools

import numpy as np
import pytest
import xgboost as xgb

from pipelines.testing import machine_speed
from pipelines.testing.machine_speed import bare_predict_rate, predict_matrix


def _booster(features: int) -> xgb.Booster:
    rng = np.random.default_rng(1)
    rows = rng.lognormal(size=(200, features))
    labels = (rows[:, 0] > np.median(rows[:, 0])).astype(int)
    return xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(rows, label=labels), 5)


class _RecordingBooster:
    """Counts predictions and the thread setting, so the rate's arithmetic can be checked on a fake clock."""

    def __init__(self, inner: xgb.Booster) -> None:
        self.inner = inner
        self.calls = 0
        self.params: dict[str, object] = {}

    def set_param(self, params: dict[str, object]) -> None:
        self.params.update(params)
        self.inner.set_param(params)

    def inplace_predict(self, matrix: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.inner.inplace_predict(matrix)


def test_the_matrix_is_the_same_for_the_same_arguments_and_positive() -> None:
    first, again = predict_matrix(50, 4), predict_matrix(50, 4)
    assert first.shape == (50, 4)
    np.testing.assert_array_equal(first, again)
    assert (first > 0).all()
    assert not np.array_equal(first, predict_matrix(50, 4, seed=1))


@pytest.mark.parametrize(("rows", "features"), [(0, 3), (3, 0)])
def test_an_empty_matrix_is_refused(rows: int, features: int) -> None:
    with pytest.raises(ValueError, match="at least one row and one feature"):
        predict_matrix(rows, features)


def test_the_rate_is_timed_rows_over_seconds_per_thread_after_an_untimed_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = itertools.count(start=100.0, step=4.0)  # the timed loop takes 4 fake seconds
    monkeypatch.setattr(machine_speed.time, "perf_counter", lambda: next(ticks))
    booster = _RecordingBooster(_booster(3))
    rate = bare_predict_rate(booster, predict_matrix(250, 3), repeats=6, threads=2)  # type: ignore[arg-type]
    assert booster.calls == 7  # one untimed warm call, six timed
    assert booster.params == {"nthread": 2}
    assert rate == pytest.approx(6 * 250 / 4.0 / 2)


def test_a_real_rate_is_positive_and_repeats_must_be_positive() -> None:
    booster = _booster(3)
    assert bare_predict_rate(booster, predict_matrix(100, 3), repeats=2) > 0
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        bare_predict_rate(booster, predict_matrix(100, 3), repeats=0)
