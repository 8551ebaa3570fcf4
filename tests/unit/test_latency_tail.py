"""Finding the batches a latency run's tail waited on, and the runs of slow batches they sit in."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.testing.latency_tail import BatchTiming, reading_batches, slow_runs, tail_batches


def _batches(seconds: list[float], rows: list[int] | None = None, first_start_ms: float = 0.0) -> list[BatchTiming]:
    """Back-to-back batches: each starts when the one before it ends."""
    starts = first_start_ms + np.concatenate([[0.0], np.cumsum(seconds)[:-1]]) * 1000
    counts = rows if rows is not None else [1000] * len(seconds)
    return [BatchTiming(i, float(s), d, n) for i, (s, d, n) in enumerate(zip(starts, seconds, counts, strict=True))]


def test_an_event_is_read_by_the_first_batch_that_starts_after_it() -> None:
    batches = _batches([1.0, 1.0, 1.0])  # starts at 0, 1000, 2000 ms
    events = np.array([-5.0, 0.0, 500.0, 1000.0, 1999.0, 2500.0])
    assert reading_batches(batches, events).tolist() == [0, 1, 1, 2, 2, 3]


def test_the_tail_is_the_events_that_arrived_while_a_slow_batch_ran() -> None:
    batches = _batches([0.4, 3.0, 1.0, 1.0])  # batch 1 is slow: starts at 400, batch 2 at 3400, batch 3 at 4400
    arrived = np.arange(0.0, 5000.0, 10.0)
    readers = reading_batches(batches, arrived)
    ends = np.array([b.started_ms + b.seconds * 1000 for b in batches])
    visible = ends[np.minimum(readers, len(batches) - 1)]
    threshold, tail = tail_batches(batches, arrived, visible, quantile=90)
    # Events arriving early in the slow batch wait for all of it and then for the next: the worst latencies.
    assert threshold == pytest.approx(np.percentile((visible - arrived) / 1000, 90))
    assert [b.batch_id for b in tail] == [2]
    assert tail[0].previous_seconds == 3.0 and tail[0].seconds == 1.0
    assert tail[0].tail_events == int(np.sum((visible - arrived) / 1000 >= threshold))


def test_slow_runs_are_consecutive_batches_over_the_threshold_longest_first() -> None:
    batches = _batches([1.0, 1.6, 1.7, 1.5, 1.0, 1.8, 1.0, 1.6], rows=[5, 8, 9, 7, 5, 9, 5, 8])
    runs = slow_runs(batches, threshold_s=1.4)
    assert [(r.first_batch_id, r.batches, r.peak_seconds, r.peak_rows) for r in runs] == [
        (1, 3, 1.7, 9),
        (5, 1, 1.8, 9),
        (7, 1, 1.6, 8),
    ]
    assert slow_runs(batches, threshold_s=2.0) == []
