"""Fixed-bucket histograms that partitions compute and the driver adds up.

The stream's writes run on executors and only small results come back to the driver. A histogram over fixed
bucket bounds is such a result: each partition counts its own values (:func:`bucket_counts`), the driver adds
the count vectors (:func:`merge_counts`), and percentiles come out of the merged counts
(:func:`histogram_quantile`, Prometheus's interpolation), without the values ever leaving their partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

LATENCY_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    6 * 3600.0,
    86400.0,
    7 * 86400.0,
)
"""Upper bounds (seconds) of the end-to-end latency buckets; a replayed backlog lands in the hour-to-week ones."""

SCORE_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Upper bounds of the score histogram: 20 equal bins over [0, 1] (the last one is ``> 0.95``)."""


def bucket_counts(values: ArrayLike, bounds: Sequence[float]) -> list[int]:
    """Counts per bucket, ``len(bounds) + 1`` of them (the last is above every bound); NaN is not counted.

    Bucket i holds ``bounds[i-1] < v <= bounds[i]`` (Prometheus's ``le``). Not cumulative, so partial counts
    from several partitions add up with :func:`merge_counts`.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    return [int(n) for n in np.bincount(index, minlength=len(bounds) + 1)]


def merge_counts(parts: Iterable[Sequence[int]]) -> list[int]:
    """The element-wise sum of several partitions' bucket counts (all of the same length)."""
    total: NDArray[np.int64] | None = None
    for part in parts:
        vector = np.asarray(part, dtype=np.int64)
        if total is not None and vector.shape != total.shape:
            raise ValueError(f"cannot merge bucket counts of lengths {total.shape[0]} and {vector.shape[0]}")
        total = vector if total is None else total + vector
    return [] if total is None else [int(n) for n in total]


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The q-quantile from bucket counts, interpolated linearly inside its bucket like PromQL's.

    The first bucket is taken to start at 0 (latencies and scores are not negative); a quantile falling in the
    open top bucket returns the highest bound, as Prometheus does. None when there are no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(bounds)} bounds need {len(bounds) + 1} counts, got {len(counts)}")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count and cumulative + count >= rank:
            if index == len(bounds):
                return float(bounds[-1])
            lower = 0.0 if index == 0 else float(bounds[index - 1])
            upper = float(bounds[index])
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return float(bounds[-1])
