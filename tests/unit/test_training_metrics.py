"""The numpy metrics against values worked out by hand (and ROC-AUC against its pairwise definition)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.training.metrics import (
    average_precision,
    average_ranks,
    best_f1_threshold,
    brier_score,
    calibration_bins,
    evaluate,
    precision_recall_at,
    roc_auc,
)

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_by_hand() -> None:
    # Pairs (positive, negative): (0.35, 0.1) win, (0.35, 0.4) lose, (0.8, 0.1) win, (0.8, 0.4) win -> 3/4.
    assert roc_auc(Y, P) == pytest.approx(0.75)
    # Positives 0.9, 0.7, 0.5 vs negatives 0.8, 0.6: 2 + 1 + 0 wins of 6.
    assert roc_auc([1, 0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5]) == pytest.approx(0.5)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc([0, 0, 1], [0.1, 0.2, 0.9]) == pytest.approx(1.0)
    assert roc_auc([1, 1], [0.1, 0.2]) is None  # one class: undefined


def test_roc_auc_equals_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.2
    p = np.round(rng.random(300), 1)  # many ties
    wins = (p[y][:, None] > p[~y][None, :]).sum() + 0.5 * (p[y][:, None] == p[~y][None, :]).sum()
    assert roc_auc(y, p) == pytest.approx(wins / (y.sum() * (~y).sum()))


def test_average_ranks_share_ties() -> None:
    np.testing.assert_allclose(average_ranks([10, 20, 20, 5, 20]), [2.0, 4.0, 4.0, 1.0, 4.0])
    assert len(average_ranks([])) == 0


def test_average_precision_by_hand() -> None:
    # Descending: 0.8 (+) P=1 R=.5; 0.4 (-) P=.5 R=.5; 0.35 (+) P=2/3 R=1 -> .5*1 + 0 + .5*2/3.
    assert average_precision(Y, P) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Tied scores are one threshold: {0.5: one +, one -} P=1/2 R=1/2; then 0.2 (+) P=2/3 R=1.
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 0.5 * 2 / 3)
    assert average_precision([1, 1, 0], [0.9, 0.8, 0.1]) == pytest.approx(1.0)
    assert average_precision([0, 0], [0.9, 0.8]) is None


def test_precision_and_recall_at_the_threshold_are_inclusive() -> None:
    assert precision_recall_at(Y, P, 0.35) == (3, pytest.approx(2 / 3), pytest.approx(1.0))
    assert precision_recall_at(Y, P, 0.5) == (1, pytest.approx(1.0), pytest.approx(0.5))
    assert precision_recall_at(Y, P, 0.95) == (0, None, pytest.approx(0.0))
    assert precision_recall_at([0, 0], [0.1, 0.9], 0.5) == (1, pytest.approx(0.0), None)


def test_calibration_bins_by_hand() -> None:
    labels = [0, 1, 0, 1, 1, 0]
    scores = [0.0, 0.05, 0.1, 0.95, 1.0, 0.55]
    bins = calibration_bins(labels, scores, bins=10)
    assert len(bins) == 10
    assert (bins[0].lower, bins[0].upper) == (0.0, pytest.approx(0.1))
    assert bins[0].count == 2 and bins[0].mean_predicted == pytest.approx(0.025) and bins[0].observed_rate == 0.5
    assert bins[1].count == 1 and bins[1].observed_rate == 0.0  # 0.1 opens the second bin
    assert bins[5].count == 1 and bins[5].mean_predicted == pytest.approx(0.55)
    assert bins[9].count == 2 and bins[9].observed_rate == 1.0  # the last bin is closed: 1.0 is in it
    assert bins[3].count == 0 and bins[3].mean_predicted is None and bins[3].observed_rate is None
    assert sum(b.count for b in bins) == len(scores)


def test_brier_and_evaluate() -> None:
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    metrics = evaluate(Y, P, threshold=0.5, bins=4)
    assert (metrics.rows, metrics.positives, metrics.alerts) == (4, 2, 1)
    assert metrics.roc_auc == pytest.approx(0.75)
    assert metrics.pr_auc == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert (metrics.precision, metrics.recall) == (pytest.approx(1.0), pytest.approx(0.5))
    assert len(metrics.calibration) == 4
    assert metrics.model_validate_json(metrics.model_dump_json()) == metrics  # survives the registry's JSON


def test_the_best_f1_threshold_by_hand() -> None:
    # Alerting at or above 0.8: F1 2/3; 0.4: 1/2; 0.35: 4/5; 0.1: 2/3.
    assert best_f1_threshold(Y, P) == 0.35
    # Each negative standing for ten: 0.35 now alerts ten false alarms for one more fraud (F1 2/7), 0.8 none (2/3).
    assert best_f1_threshold(Y, P, negative_weight=10) == 0.8
    # Equal F1 (2/3 at 0.9 and at 0.5): the higher threshold, with fewer alerts.
    assert best_f1_threshold([1, 0, 0, 1], [0.9, 0.7, 0.6, 0.5]) == 0.9
    assert best_f1_threshold([0, 0], [0.3, 0.6]) is None


def test_weighted_negatives_estimate_the_traffic_figures() -> None:
    """Each labelled negative standing for ten in traffic: precision-like figures count it ten times."""
    assert precision_recall_at(Y, P, 0.35, negative_weight=10) == (3, pytest.approx(2 / 12), pytest.approx(1.0))
    # Steps: 0.8 (precision 1, recall 1/2), 0.4 (recall unchanged), 0.35 (precision 2/12, recall 1).
    assert average_precision(Y, P, negative_weight=10) == pytest.approx(0.5 + 0.5 * 2 / 12)
    assert brier_score([0, 1], [0.2, 0.6], negative_weight=3) == pytest.approx((3 * 0.04 + 0.16) / 4)
    first = calibration_bins([0, 1], [0.0, 0.05], bins=10, negative_weight=3)[0]
    assert first.count == 2 and first.observed_rate == pytest.approx(1 / 4)
    assert first.mean_predicted == pytest.approx(0.05 / 4)
    metrics = evaluate(Y, P, threshold=0.35, negative_weight=10)
    assert metrics.negative_weight == 10 and metrics.precision == pytest.approx(2 / 12)
    assert metrics.roc_auc == evaluate(Y, P, threshold=0.35).roc_auc  # one weight for every negative: no change
    assert metrics.recall == pytest.approx(1.0) and metrics.alerts == 3


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        roc_auc([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.5, float("nan")])
