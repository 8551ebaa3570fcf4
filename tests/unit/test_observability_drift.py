"""Drift: PSI and KS, the training baseline (build, JSON round trip), and the rolling monitor on generated traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ObservabilitySettings
from pipelines.observability.drift import (
    SCORE,
    DriftMonitor,
    RollingWindow,
    baseline_path,
    bin_counts,
    build_baseline,
    ks_test,
    load_baseline,
    psi,
    quantile_edges,
    save_baseline,
)
from pipelines.observability.errors import BaselineError

FEATURES = ["amount", "txn_count_1h", "seconds_since_prev"]


def traffic(rows: int, seed: int, *, amount_scale: float = 1.0, score_shift: float = 0.0) -> pd.DataFrame:
    """Card-payment-like features: log-normal amounts, small counts, gaps with 10% missing (first payments)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(3600.0, rows)
    gaps[rng.random(rows) < 0.1] = np.nan
    scores = np.clip(rng.beta(0.6, 12.0, rows) + score_shift, 0.0, 1.0)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.5, 1.0, rows) * amount_scale,
            "txn_count_1h": rng.poisson(1.5, rows).astype(float),
            "seconds_since_prev": gaps,
            "score": scores,
        }
    )


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return traffic(20_000, seed=1)


def test_psi_is_zero_for_identical_distributions_and_large_for_a_shift() -> None:
    proportions = [0.1] * 10
    assert psi(proportions, proportions) == 0.0
    assert psi([100, 200, 700], [1, 2, 7]) == pytest.approx(0.0)  # counts and proportions alike
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * np.log(0.9 / 0.5) - 0.4 * np.log(0.1 / 0.5))
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))  # an empty baseline bin is clamped, not infinite
    with pytest.raises(ValueError, match="one length"):
        psi([1, 2], [1, 2, 3])


def test_psi_of_samples_from_one_distribution_is_small_and_of_a_shifted_one_above_threshold(
    training: pd.DataFrame,
) -> None:
    baseline = build_baseline(training, FEATURES, training["score"])
    same = traffic(5000, seed=2)
    shifted = traffic(5000, seed=2, amount_scale=1.6)
    amount = baseline.distribution("amount")
    assert amount.psi_of(same["amount"]) == pytest.approx(0.0, abs=0.02)
    assert (amount.psi_of(shifted["amount"]) or 0) > 0.2


def test_quantile_edges_follow_the_baseline_and_collapse_ties() -> None:
    assert quantile_edges(np.arange(1, 101, dtype=float), 4) == (25.0, 50.0, 75.0)
    assert quantile_edges([1.0] * 60 + [2.0] * 40, 10) == (1.0, 2.0)
    assert quantile_edges([np.nan, np.nan], 10) == ()
    # value bins (..1], (1..2], (2..), then missing
    assert bin_counts([0.5, 1.0, 1.5, 2.0, 9.0, np.nan, None], (1.0, 2.0)).tolist() == [2, 2, 1, 2]


def test_ks_agrees_for_one_distribution_and_separates_a_shift() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 3000)
    same = ks_test(base, rng.normal(0, 1, 3000))
    moved = ks_test(base, rng.normal(0.5, 1, 3000))
    assert same is not None and moved is not None
    assert same[0] < 0.05 and same[1] > 0.001
    assert moved[0] > 0.15 and moved[1] < 1e-12
    assert ks_test([], [1.0]) is None
    assert ks_test([np.nan], [1.0]) is None


def test_the_baseline_round_trips_through_json_next_to_a_model(training: pd.DataFrame, tmp_path: Path) -> None:
    baseline = build_baseline(training, FEATURES, training["score"], bins=10, sample_size=500)
    path = save_baseline(baseline, baseline_path(tmp_path / "versions" / "3"))
    assert path == tmp_path / "versions" / "3" / "drift_baseline.json"
    loaded = load_baseline(path)
    assert loaded == baseline
    assert loaded.names == [*FEATURES, SCORE]
    gaps = loaded.distribution("seconds_since_prev")
    assert gaps.proportions[-1] == pytest.approx(0.1, abs=0.01)  # the missing bin
    assert len(gaps.sample) == 500 and not np.isnan(gaps.sample).any()
    assert sum(loaded.distribution(SCORE).proportions) == pytest.approx(1.0)


def test_bad_baselines_are_clear_errors(training: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no column"):
        build_baseline(training, ["nope"])
    with pytest.raises(BaselineError, match="may not be called"):
        build_baseline(training, ["score"])
    with pytest.raises(BaselineError, match="scores for"):
        build_baseline(training, FEATURES, [0.1, 0.2])
    with pytest.raises(BaselineError, match="no drift baseline"):
        load_baseline(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"features": {"a": {"edges": [2, 1]}}}')
    with pytest.raises(BaselineError, match="not a drift baseline"):
        load_baseline(broken)
    with pytest.raises(BaselineError, match="no feature"):
        build_baseline(training, FEATURES).distribution(SCORE)


def monitor_for(training: pd.DataFrame) -> DriftMonitor:
    baseline = build_baseline(training, FEATURES, training["score"])
    return DriftMonitor.from_settings(baseline, ObservabilitySettings(drift_window=5000, drift_min_samples=1000))


def test_the_monitor_stays_quiet_on_unshifted_traffic(training: pd.DataFrame) -> None:
    monitor = monitor_for(training)
    for batch in range(15):
        live = traffic(800, seed=100 + batch)
        monitor.update_frame(live, score_column="score")
        report = monitor.evaluate()
        assert report.crossings == (), [r for r in report.crossings]
        assert report.drifting == []
    judged = {r.feature: r for r in report.results}
    assert all(r.judged for r in judged.values())
    assert all((r.psi or 0) < 0.05 for r in judged.values())


def test_the_monitor_fires_once_on_shifted_traffic_and_recovers(training: pd.DataFrame) -> None:
    monitor = monitor_for(training)
    monitor.update_frame(traffic(3000, seed=7), score_column="score")
    assert monitor.evaluate().crossings == ()

    crossed: list[tuple[str, str]] = []
    for batch in range(4):  # amounts 1.8x larger and scores 0.2 higher displace the window
        live = traffic(1500, seed=200 + batch, amount_scale=1.8, score_shift=0.2)
        monitor.update_frame(live, score_column="score")
        report = monitor.evaluate()
        crossed.extend(report.crossed)
    assert sorted(crossed) == [("amount", "ks"), ("amount", "psi"), (SCORE, "ks"), (SCORE, "psi")]  # once each
    assert set(report.drifting) == {"amount", SCORE}
    amount = report.result("amount")
    assert amount.psi is not None and amount.psi > 0.2
    assert "psi" in amount.reasons and "ks" in amount.reasons
    assert not report.result("txn_count_1h").drifting

    for batch in range(5):
        monitor.update_frame(traffic(1500, seed=300 + batch), score_column="score")
        report = monitor.evaluate()
        if report.recovered:
            break
    assert set(report.recovered) == {"amount", SCORE}
    assert report.drifting == []


def test_a_feature_going_missing_is_drift(training: pd.DataFrame) -> None:
    monitor = monitor_for(training)
    live = traffic(2000, seed=9)
    live["seconds_since_prev"] = np.nan
    monitor.update(features={c: live[c].to_numpy() for c in FEATURES}, scores=live["score"].to_numpy())
    report = monitor.evaluate()
    assert [r.feature for r in report.crossings] == ["seconds_since_prev"]
    assert report.result("seconds_since_prev").reasons == ("psi",)  # KS has no values to compare


def test_nothing_is_judged_before_min_samples(training: pd.DataFrame) -> None:
    monitor = monitor_for(training)
    monitor.update_frame(traffic(999, seed=11, amount_scale=5.0), score_column="score")
    report = monitor.evaluate()
    assert not any(r.judged for r in report.results) and report.crossings == ()
    assert report.as_dict() == {}
    monitor.update(features={"amount": [1000.0], "unknown": [1.0]})  # unknown names are ignored
    assert monitor.evaluate().result("amount").judged


def test_rolling_window_keeps_exactly_the_latest_values() -> None:
    window = RollingWindow(5)
    window.extend([1, 2, 3])
    assert sorted(window.values()) == [1, 2, 3]
    window.extend([4, 5, 6, 7])
    assert sorted(window.values()) == [3, 4, 5, 6, 7]
    window.extend(np.arange(100, 112))
    assert sorted(window.values()) == [107, 108, 109, 110, 111]
    assert len(window) == 5
