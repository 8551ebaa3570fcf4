"""Binary classifier metrics in numpy: ROC-AUC, average precision, precision/recall at a threshold, calibration,
and the threshold with the best F1.

Written here rather than imported from scikit-learn, which is not a dependency; definitions follow
scikit-learn's (``roc_auc_score``, ``average_precision_score``) so the numbers compare, ties included: tied
scores share their average rank (ROC-AUC) and form one threshold step (average precision).

``negative_weight``: when only a sample of the negatives (genuine payments) is labelled, each labelled negative
stands for ``1 / sample fraction`` negatives of the traffic. Precision, average precision, the calibration's
observed rates and the Brier score then count each negative that many times, so they estimate the traffic's
figures rather than the fraud-rich labelled set's (where one false alert in fifty goes unseen). Recall counts
positives only, and ROC-AUC is unchanged by a weight shared by every negative, so neither takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipelines.models.metadata import CalibrationBin, EvaluationMetrics


def _inputs(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(scores, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-d and of equal length, got {y.shape} and {p.shape}")
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    return y, p


def average_ranks(values: ArrayLike) -> NDArray[np.float64]:
    """1-based ranks, ties sharing the mean of the ranks they span (scipy's ``rankdata(method="average")``)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]] if len(v) else np.zeros(0, dtype=bool)
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half); None for one class."""
    y, p = _inputs(labels, scores)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = average_ranks(p)
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(labels: ArrayLike, scores: ArrayLike, negative_weight: float = 1.0) -> float | None:
    """Area under the precision-recall curve as a step sum: sum over thresholds of (R_n - R_n-1) * P_n."""
    y, p = _inputs(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        return None
    steps = _threshold_steps(y, p, negative_weight)
    precision = steps.true_positives / (steps.true_positives + steps.false_positives)
    recall = steps.true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class _ThresholdSteps:
    """For each distinct score, from the highest down: alerting at or above it, the positives caught and the
    (weighted) negatives alerted."""

    thresholds: NDArray[np.float64]
    true_positives: NDArray[np.float64]
    false_positives: NDArray[np.float64]


def _threshold_steps(y: NDArray[np.bool_], p: NDArray[np.float64], negative_weight: float) -> _ThresholdSteps:
    order = np.argsort(-p, kind="mergesort")
    ordered, hits = p[order], y[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]  # one step per distinct score
    true_positives = np.cumsum(hits, dtype=np.float64)[last_of_tie]
    false_positives = negative_weight * np.cumsum(~hits, dtype=np.float64)[last_of_tie]
    return _ThresholdSteps(ordered[last_of_tie], true_positives, false_positives)


def best_f1_threshold(labels: ArrayLike, scores: ArrayLike, negative_weight: float = 1.0) -> float | None:
    """The score at or above which alerting gives the highest F1 on this set; None without a positive.

    Candidates are the set's own scores, so the chosen threshold alerts exactly the events its F1 was measured
    on. Of equal F1s the highest threshold wins (fewer alerts for the same quality).
    """
    y, p = _inputs(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        return None
    steps = _threshold_steps(y, p, negative_weight)
    f1 = 2 * steps.true_positives / (steps.true_positives + steps.false_positives + positives)
    return float(steps.thresholds[int(np.argmax(f1))])  # argmax keeps the first, i.e. highest, of equal F1s


def precision_recall_at(
    labels: ArrayLike, scores: ArrayLike, threshold: float, negative_weight: float = 1.0
) -> tuple[int, float | None, float | None]:
    """(alerts, precision, recall) when events scoring at or above ``threshold`` alert; ``alerts`` counts the
    set's own rows, unweighted."""
    y, p = _inputs(labels, scores)
    alert = p >= threshold
    alerts, hits, positives = int(alert.sum()), int((alert & y).sum()), int(y.sum())
    return alerts, weighted_precision(hits, alerts, negative_weight), (hits / positives if positives else None)


def weighted_precision(hits: int, alerts: int, negative_weight: float = 1.0) -> float | None:
    """Share of alerts that were positive, each false alert counted ``negative_weight`` times; None without alerts."""
    return hits / (hits + negative_weight * (alerts - hits)) if alerts else None


def calibration_bins(
    labels: ArrayLike, scores: ArrayLike, bins: int = 10, negative_weight: float = 1.0
) -> tuple[CalibrationBin, ...]:
    """Equal-width score bins over [0, 1] (the last one closed): count (the set's rows), mean score and observed
    positive rate (both weighted).

    A calibrated model has mean score close to the observed rate in every well-filled bin.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    y, p = _inputs(labels, scores)
    w = _row_weights(y, negative_weight)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], p, side="right")
    result = []
    for i in range(bins):
        members = index == i
        count = int(members.sum())
        result.append(
            CalibrationBin(
                lower=float(edges[i]),
                upper=float(edges[i + 1]),
                count=count,
                mean_predicted=float(np.average(p[members], weights=w[members])) if count else None,
                observed_rate=float(np.average(y[members], weights=w[members])) if count else None,
            )
        )
    return tuple(result)


def brier_score(labels: ArrayLike, scores: ArrayLike, negative_weight: float = 1.0) -> float | None:
    """Mean squared difference between score and outcome (weighted); None for an empty set."""
    y, p = _inputs(labels, scores)
    return float(np.average((p - y) ** 2, weights=_row_weights(y, negative_weight))) if len(p) else None


def _row_weights(y: NDArray[np.bool_], negative_weight: float) -> NDArray[np.float64]:
    return np.where(y, 1.0, negative_weight)


def evaluate(
    labels: ArrayLike, scores: ArrayLike, threshold: float, bins: int = 10, negative_weight: float = 1.0
) -> EvaluationMetrics:
    """Every metric the registry records for one labelled set."""
    y, p = _inputs(labels, scores)
    alerts, precision, recall = precision_recall_at(y, p, threshold, negative_weight)
    return EvaluationMetrics(
        rows=len(y),
        positives=int(y.sum()),
        negative_weight=negative_weight,
        roc_auc=roc_auc(y, p),
        pr_auc=average_precision(y, p, negative_weight),
        threshold=threshold,
        alerts=alerts,
        precision=precision,
        recall=recall,
        brier=brier_score(y, p, negative_weight),
        calibration=calibration_bins(y, p, bins, negative_weight),
    )
