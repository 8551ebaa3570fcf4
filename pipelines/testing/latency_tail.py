"""Which micro-batches a latency run's slowest scores waited on.

A score's latency is, roughly, the rest of the batch running when its event arrived plus the whole of the batch
that reads it. A p99 over hundreds of thousands of events is therefore decided by a handful of batches: this module
finds them in a trace of ``benchmarks/score_latency.py --trace``, and the runs of consecutive slow batches they sit
in (a batch takes in what arrived while the one before it ran, so a slow batch makes a large one, slow in turn).

Pure functions over arrays; the script (``benchmarks/latency_tail.py``) reads the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchTiming:
    """One micro-batch as Spark's progress report gives it."""

    batch_id: int
    started_ms: float
    """When its trigger started: the batch reads what the source held at about that moment."""
    seconds: float
    """Its whole trigger (planning, the foreachBatch job, the offset and commit logs)."""
    input_rows: int


@dataclass(frozen=True)
class TailBatch:
    """A batch that read some of the slowest-scored events."""

    batch_id: int
    tail_events: int
    seconds: float
    previous_seconds: float
    """The batch that ran while those events arrived: they waited for it to end, then for this one."""
    input_rows: int


def reading_batches(batches: Sequence[BatchTiming], event_times_ms: np.ndarray) -> np.ndarray:
    """For each event, the index (in ``batches``, ordered by start) of the first batch that started after its
    event time: the batch that read it, give or take the producer's pacing (an event may be sent up to its
    chunk's 0.1 s before its stamp). Events after the last start get ``len(batches)``."""
    starts = np.array([b.started_ms for b in batches], dtype=np.float64)
    return np.searchsorted(starts, event_times_ms, side="right")


def tail_batches(
    batches: Sequence[BatchTiming], event_times_ms: np.ndarray, visible_ms: np.ndarray, quantile: float = 99
) -> tuple[float, list[TailBatch]]:
    """The latency at ``quantile`` (seconds) and the batches that read the events at or above it, most first."""
    latency_s = (visible_ms - event_times_ms) / 1000
    threshold = float(np.percentile(latency_s, quantile))
    readers = reading_batches(batches, event_times_ms[latency_s >= threshold])
    found = []
    for index, count in zip(*np.unique(readers, return_counts=True), strict=True):
        if 0 < index < len(batches):
            batch, previous = batches[index], batches[index - 1]
            found.append(TailBatch(batch.batch_id, int(count), batch.seconds, previous.seconds, batch.input_rows))
    return threshold, sorted(found, key=lambda b: -b.tail_events)


@dataclass(frozen=True)
class SlowRun:
    """Consecutive batches each slower than a threshold."""

    first_batch_id: int
    batches: int
    peak_seconds: float
    peak_rows: int


def slow_runs(batches: Sequence[BatchTiming], threshold_s: float) -> list[SlowRun]:
    """Every run of consecutive batches slower than ``threshold_s``, longest first."""
    runs: list[SlowRun] = []
    current: list[BatchTiming] = []
    for batch in [*batches, None]:
        if batch is not None and batch.seconds > threshold_s:
            current.append(batch)
            continue
        if current:
            peak = max(current, key=lambda b: b.seconds)
            runs.append(SlowRun(current[0].batch_id, len(current), peak.seconds, max(b.input_rows for b in current)))
            current = []
    return sorted(runs, key=lambda r: (-r.batches, r.first_batch_id))
