"""What each partition observes while it scores, small enough to travel back with its statistics row.

The scores, their latencies and the feature values exist only on the executors. Instead of collecting them,
the partition that publishes the scores summarises them (:func:`observe_partition`): latency and score bucket
counts (fixed bounds, so they add up across partitions) and a small uniform random sample of rows for the
drift monitor. It is JSON (``to_json``), like the partition statistics it rides with; the driver adds the
partitions up with :func:`merge_observations`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipelines.observability.histograms import LATENCY_BUCKETS, SCORE_BUCKETS, bucket_counts, merge_counts

DEFAULT_SAMPLE_ROWS = 200
"""Rows each partition sends for drift: with 4 partitions, 800 values per feature per batch."""


@dataclass
class PartitionObservations:
    """One partition's summary; ``sample`` holds the same random rows of every feature and of the score."""

    rows: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum_s: float = 0.0
    score_counts: list[int] = field(default_factory=lambda: [0] * (len(SCORE_BUCKETS) + 1))
    sample: dict[str, list[float | None]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PartitionObservations:
        return cls(**json.loads(text))


def observe_partition(
    event_time_ms: ArrayLike,
    published_at_ms: int,
    scores: ArrayLike,
    features: Mapping[str, ArrayLike] | None = None,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> PartitionObservations:
    """Summarise a scored partition. ``published_at_ms`` is when its scores were committed to Kafka (take it
    after the transaction commits: that is when a read_committed consumer can see them)."""
    event_ms = np.asarray(event_time_ms, dtype=np.float64)
    score_values = np.asarray(scores, dtype=np.float64)
    if event_ms.shape != score_values.shape:
        raise ValueError(f"{event_ms.size} event times for {score_values.size} scores")
    latencies = np.maximum(0.0, (published_at_ms - event_ms) / 1000.0)
    rows = int(score_values.size)
    chosen = _sample_indices(rows, sample_rows, seed)
    sample: dict[str, list[float | None]] = {"score": _listed(score_values[chosen])}
    for name, values in (features or {}).items():
        column = np.asarray(values, dtype=np.float64)
        if column.size != rows:
            raise ValueError(f"feature {name!r} has {column.size} values for {rows} scores")
        sample[name] = _listed(column[chosen])
    return PartitionObservations(
        rows=rows,
        latency_counts=bucket_counts(latencies, LATENCY_BUCKETS),
        latency_sum_s=float(latencies.sum()),
        score_counts=bucket_counts(score_values, SCORE_BUCKETS),
        sample=sample,
    )


def _sample_indices(rows: int, size: int, seed: int) -> NDArray[np.int64]:
    if rows <= size:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


def _listed(values: NDArray[np.float64]) -> list[float | None]:
    """JSON-safe: NaN (a missing feature) becomes None, which the drift monitor reads back as missing."""
    return [None if np.isnan(v) else float(v) for v in values]


@dataclass(frozen=True)
class BatchObservations:
    """A whole batch's observations: summed counts and the concatenated samples."""

    rows: int
    latency_counts: list[int]
    latency_sum_s: float
    score_counts: list[int]
    features: dict[str, NDArray[np.float64]]
    scores: NDArray[np.float64]


def merge_observations(parts: Iterable[PartitionObservations]) -> BatchObservations:
    listed = list(parts)
    names = sorted({name for part in listed for name in part.sample} - {"score"})
    return BatchObservations(
        rows=sum(part.rows for part in listed),
        latency_counts=merge_counts(part.latency_counts for part in listed) or [0] * (len(LATENCY_BUCKETS) + 1),
        latency_sum_s=float(sum(part.latency_sum_s for part in listed)),
        score_counts=merge_counts(part.score_counts for part in listed) or [0] * (len(SCORE_BUCKETS) + 1),
        features={
            name: np.asarray([v for part in listed for v in part.sample.get(name, [])], dtype=np.float64)
            for name in names
        },
        scores=np.asarray([v for part in listed for v in part.sample.get("score", [])], dtype=np.float64),
    )
