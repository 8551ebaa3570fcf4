"""Binary classifier metrics in numpy: ROC-AUC, average precision, precision/recall at a threshold, calibration.

Written here rather than imported from scikit-learn, which is not a dependency; definitions follow
scikit-learn's (``roc_auc_score``, ``average_precision_score``) so the numbers compare, ties included: tied
scores share their average rank (ROC-AUC) and form one threshold step (average precision).
"""

from __future__ import annotations

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


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the precision-recall curve as a step sum: sum over thresholds of (R_n - R_n-1) * P_n."""
    y, p = _inputs(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        return None
    order = np.argsort(-p, kind="mergesort")
    ordered, hits = p[order], y[order]
    true_positives = np.cumsum(hits)
    false_positives = np.cumsum(~hits)
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]  # one step per distinct score
    true_positives, false_positives = true_positives[last_of_tie], false_positives[last_of_tie]
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_at(
    labels: ArrayLike, scores: ArrayLike, threshold: float
) -> tuple[int, float | None, float | None]:
    """(alerts, precision, recall) when events scoring at or above ``threshold`` alert."""
    y, p = _inputs(labels, scores)
    alert = p >= threshold
    alerts, hits, positives = int(alert.sum()), int((alert & y).sum()), int(y.sum())
    return alerts, (hits / alerts if alerts else None), (hits / positives if positives else None)


def calibration_bins(labels: ArrayLike, scores: ArrayLike, bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Equal-width score bins over [0, 1] (the last one closed): count, mean score and observed positive rate.

    A calibrated model has mean score close to the observed rate in every well-filled bin.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    y, p = _inputs(labels, scores)
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
                mean_predicted=float(p[members].mean()) if count else None,
                observed_rate=float(y[members].mean()) if count else None,
            )
        )
    return tuple(result)


def brier_score(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Mean squared difference between score and outcome; None for an empty set."""
    y, p = _inputs(labels, scores)
    return float(np.mean((p - y) ** 2)) if len(p) else None


def evaluate(labels: ArrayLike, scores: ArrayLike, threshold: float, bins: int = 10) -> EvaluationMetrics:
    """Every metric the registry records for one labelled set."""
    y, p = _inputs(labels, scores)
    alerts, precision, recall = precision_recall_at(y, p, threshold)
    return EvaluationMetrics(
        rows=len(y),
        positives=int(y.sum()),
        roc_auc=roc_auc(y, p),
        pr_auc=average_precision(y, p),
        threshold=threshold,
        alerts=alerts,
        precision=precision,
        recall=recall,
        brier=brier_score(y, p),
        calibration=calibration_bins(y, p, bins),
    )
