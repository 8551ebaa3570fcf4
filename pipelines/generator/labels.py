"""Labels: the late truth about transactions, and when it becomes known.

Every fraudulent transaction gets a chargeback label (is_fraud = true) and a sample of legitimate ones a
"confirmed genuine" label, each ``delay`` after the transaction: chargebacks typically a day or two (an hour
at the earliest), confirmations a few days. Labels are held back and released in label-time order once the
generated stream's event time has passed them, the way they would arrive in production.
"""

from __future__ import annotations

import numpy as np

from pipelines.generator.columns import NOT_BAD, LabelColumns, TransactionColumns
from pipelines.generator.population import Population

HOUR_MS = 3_600_000
MAX_DELAY_MS = 60 * 24 * HOUR_MS


def label_delays(rng: np.random.Generator, is_fraud: np.ndarray) -> np.ndarray:
    """Milliseconds from transaction to label: log-normal, median 36 h for fraud and 72 h for confirmations."""
    n = len(is_fraud)
    fraud_delay = np.clip(rng.lognormal(np.log(36 * HOUR_MS), 0.9, n), HOUR_MS, MAX_DELAY_MS)
    genuine_delay = np.clip(rng.lognormal(np.log(72 * HOUR_MS), 0.6, n), 6 * HOUR_MS, MAX_DELAY_MS)
    return np.where(is_fraud, fraud_delay, genuine_delay).astype(np.int64)


def labels_for(
    rng: np.random.Generator, chunk: TransactionColumns, population: Population, genuine_fraction: float
) -> LabelColumns:
    """Labels for every fraudulent row and for ``genuine_fraction`` of legitimate ones (bad rows get none)."""
    fraud = chunk.fraud > 0
    sampled = rng.random(len(chunk)) < genuine_fraction
    rows = np.flatnonzero((fraud | sampled) & (chunk.bad_kind == NOT_BAD))
    is_fraud = fraud[rows]
    return LabelColumns(
        event_id=chunk.event_id[rows],
        card_id=population.card_ids[chunk.card[rows]],
        is_fraud=is_fraud,
        label_time=chunk.event_time[rows] + label_delays(rng, is_fraud),
    )


class LabelQueue:
    """Labels not yet known at the stream's current event time."""

    def __init__(self) -> None:
        self._pending = LabelColumns.empty()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, labels: LabelColumns) -> None:
        self._pending = LabelColumns.concat([self._pending, labels])

    def release(self, until_ms: int) -> LabelColumns:
        """Labels with label_time <= until_ms, in label-time order; the rest stay queued."""
        due = self._pending.label_time <= until_ms
        released = self._pending.take(np.flatnonzero(due))
        self._pending = self._pending.take(np.flatnonzero(~due))
        return released.take(np.argsort(released.label_time, kind="stable"))

    def drain(self) -> LabelColumns:
        """Everything still queued, in label-time order (end of a run)."""
        remaining = self._pending
        self._pending = LabelColumns.empty()
        return remaining.take(np.argsort(remaining.label_time, kind="stable"))
