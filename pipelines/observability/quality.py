"""Live model quality from delayed labels: precision, recall and ROC-AUC over the latest labelled scores.

Scores are published as events stream through; their labels (chargebacks, confirmations) arrive hours or days
later, and may even arrive first (a replay, or the generator publishing labels with the traffic). A
:class:`LiveQuality` holds whichever side came first, in bounded memory, joins them by event id, and keeps the
latest ``window`` joined (score, alert, label) triples. Pure: fed by :mod:`pipelines.observability.quality_feed`
in the job, or by :func:`quality_from_frames` from two pandas frames (the demo).

ROC-AUC is :func:`pipelines.training.metrics.roc_auc`, the same definition training reports, so live and
validation numbers compare. Precision and recall are those of the published ``is_alert`` flag: the threshold
the scoring model actually used, whichever version that was. When only a sample of genuine events gets a label
(``models.genuine_label_fraction``), precision counts each labelled genuine event as the ``negative_weight``
events it stands for, as training's metrics do: otherwise one false alert in fifty would go unseen and the live
precision would not compare with validation's.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from pipelines.training.metrics import roc_auc, weighted_precision

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.config import Settings


@dataclass(frozen=True)
class QualitySnapshot:
    """Quality over a set of labelled scores; a metric that is undefined on it (no alert, one class) is None."""

    labelled: int
    positives: int
    alerts: int
    true_positives: int
    negative_weight: float
    precision: float | None
    recall: float | None
    roc_auc: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def quality_of(
    labels: ArrayLike, scores: ArrayLike, is_alert: ArrayLike, negative_weight: float = 1.0
) -> QualitySnapshot:
    """Precision (each labelled negative counted ``negative_weight`` times) and recall of the alerts, and ROC-AUC
    of the scores, against the labels; ``alerts`` counts the labelled events, unweighted."""
    y = np.asarray(labels, dtype=bool)
    alert = np.asarray(is_alert, dtype=bool)
    p = np.asarray(scores, dtype=np.float64)
    if not y.shape == alert.shape == p.shape:
        raise ValueError(f"labels, scores and alerts differ in shape: {y.shape}, {p.shape}, {alert.shape}")
    alerts, positives = int(alert.sum()), int(y.sum())
    hits = int((alert & y).sum())
    return QualitySnapshot(
        labelled=int(y.size),
        positives=positives,
        alerts=alerts,
        true_positives=hits,
        negative_weight=negative_weight,
        precision=weighted_precision(hits, alerts, negative_weight),
        recall=hits / positives if positives else None,
        roc_auc=roc_auc(y, p) if y.size else None,
    )


def quality_from_frames(
    scores: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label_column: str = "is_fraud",
    window: int | None = None,
    negative_weight: float = 1.0,
) -> QualitySnapshot:
    """The same numbers from a frame of scores (event_id, score, is_alert) and one of labels (event_id, label).

    Events without a label are not judged. With ``window``, only the latest ``window`` labelled events count,
    latest by ``label_time`` if the labels carry it (as :class:`LiveQuality` keeps them), else by row order.
    """
    for name, frame, needed in (
        ("scores", scores, ("event_id", "score", "is_alert")),
        ("labels", labels, ("event_id", label_column)),
    ):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise ValueError(f"the {name} frame lacks column(s) {missing}")
    latest_labels = labels
    if "label_time" in labels.columns:
        latest_labels = labels.sort_values("label_time", kind="mergesort")
    latest_labels = latest_labels.drop_duplicates("event_id", keep="first")
    latest_scores = scores.drop_duplicates("event_id", keep="last")
    joined = latest_labels.merge(latest_scores[["event_id", "score", "is_alert"]], on="event_id", how="inner")
    if window is not None:
        joined = joined.tail(window)
    return quality_of(
        joined[label_column].to_numpy(bool), joined["score"].to_numpy(float), joined["is_alert"], negative_weight
    )


class LiveQuality:
    """Joins scores and delayed labels by event id; quality over the latest ``window`` joined events.

    Memory is bounded: at most ``max_pending`` scores wait for a label and ``max_pending`` labels for a score;
    beyond that the oldest are dropped (counted in ``evicted_scores`` / ``evicted_labels``): a label arriving
    after its score was dropped is never judged, so set ``max_pending`` above the traffic of a label delay.
    """

    def __init__(self, window: int = 5000, max_pending: int = 200_000, negative_weight: float = 1.0) -> None:
        if window < 1 or max_pending < 1:
            raise ValueError("window and max_pending must be >= 1")
        if negative_weight < 1:
            raise ValueError(f"negative_weight is 1 / the genuine label fraction, at least 1; got {negative_weight}")
        self.window = window
        self.max_pending = max_pending
        self.negative_weight = negative_weight
        self._scores: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._labels: OrderedDict[str, bool] = OrderedDict()
        self._joined: deque[tuple[float, bool, bool]] = deque(maxlen=window)
        self.evicted_scores = 0
        self.evicted_labels = 0
        self.matched = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveQuality:
        observe = settings.observability
        return cls(
            window=observe.quality_window,
            max_pending=observe.quality_max_pending,
            negative_weight=settings.models.negative_weight,
        )

    @property
    def pending_scores(self) -> int:
        return len(self._scores)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def add_scores(self, event_ids: Iterable[str], scores: Iterable[float], is_alert: Iterable[bool]) -> int:
        """Published scores; returns how many met a label already waiting."""
        joined = 0
        for event_id, score, alert in zip(event_ids, scores, is_alert, strict=True):
            label = self._labels.pop(event_id, None)
            if label is not None:
                self._join(float(score), bool(alert), label)
                joined += 1
                continue
            self._scores[event_id] = (float(score), bool(alert))
            self._scores.move_to_end(event_id)
            if len(self._scores) > self.max_pending:
                self._scores.popitem(last=False)
                self.evicted_scores += 1
        return joined

    def add_labels(self, event_ids: Iterable[str], labels: Iterable[bool]) -> int:
        """Labels as they arrive; returns how many met their score. A second label for an event is ignored."""
        joined = 0
        for event_id, label in zip(event_ids, labels, strict=True):
            scored = self._scores.pop(event_id, None)
            if scored is not None:
                self._join(scored[0], scored[1], bool(label))
                joined += 1
                continue
            if event_id in self._labels:
                continue
            self._labels[event_id] = bool(label)
            if len(self._labels) > self.max_pending:
                self._labels.popitem(last=False)
                self.evicted_labels += 1
        return joined

    def _join(self, score: float, alert: bool, label: bool) -> None:
        self._joined.append((score, alert, label))
        self.matched += 1

    def snapshot(self) -> QualitySnapshot:
        """Quality over the latest ``window`` labelled scores (all of them, fewer at the start)."""
        if not self._joined:
            return quality_of(np.zeros(0, bool), np.zeros(0), np.zeros(0, bool), self.negative_weight)
        scores, alerts, labels = (np.asarray(column) for column in zip(*self._joined, strict=True))
        return quality_of(labels, scores, alerts, self.negative_weight)
