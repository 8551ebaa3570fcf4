"""The transaction generator: options, and the chunk-by-chunk orchestration of the pure pieces.

Deterministic: for the same options (and, for real-time runs, the same clock) it yields the same chunks,
byte for byte once encoded. Each chunk draws from its own random stream (seed, chunk index), and the only
state carried between chunks is the fraud injector's (budgets, exposures) and the label queue, both
themselves deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import FeaturestreamError
from pipelines.generator.bad_records import BAD_KINDS, INVALID_KINDS, apply_invalid_values, mark_bad_rows
from pipelines.generator.columns import LabelColumns, TransactionColumns
from pipelines.generator.fraud import FraudInjector, FraudMix
from pipelines.generator.labels import LabelQueue, labels_for
from pipelines.generator.population import Population, build_population
from pipelines.generator.timing import DAY_MS, EventTimePlan, SpanPlan, TimeArgumentError, WallClockPlan, wall_clock_ms
from pipelines.generator.traffic import legitimate_chunk

OUT_OF_ORDER_MAX_MS = 5 * 60_000
FUTURE_TOLERANCE_MS = DAY_MS  # the transactions suite rejects event_time more than a day after "now"


class GeneratorOptionsError(FeaturestreamError):
    """Generator options that contradict each other or are out of range."""


@dataclass(frozen=True)
class GeneratorOptions:
    """What to generate. Times are epoch milliseconds; ``now_ms`` is the run's notion of "now"."""

    count: int
    now_ms: int
    seed: int = 0
    population_seed: int | None = None
    """Seeds the cards and merchants (their homes, spending, breached merchants) apart from the traffic; None means
    ``seed``. Traffic that continues an earlier run's history (the demo's live events) takes that run's seed here and
    a seed of its own: the same cards behaving as before, in new transactions. With another population the ids
    would be reused by different cards, whose history would then look like a sudden change of behaviour."""
    cards: int = 20_000
    merchants: int = 2_000
    fraud_rate: float = 0.01
    fraud_mix: FraudMix = field(default_factory=FraudMix)
    compromised_merchant_share: float = 0.01
    genuine_label_fraction: float = 0.02
    start_ms: int | None = None
    duration_ms: int | None = None
    rate: float | None = None
    out_of_order_fraction: float = 0.0
    late_fraction: float = 0.0
    late_by_ms: int = 3_600_000
    bad_fraction: float = 0.0
    bad_kinds: tuple[str, ...] = BAD_KINDS
    chunk_size: int = 20_000

    def __post_init__(self) -> None:
        problems = []
        if self.count < 0:
            problems.append(f"count must be >= 0, got {self.count}")
        if self.cards < 1:
            problems.append(f"cards must be >= 1, got {self.cards}")
        for name in ("fraud_rate", "genuine_label_fraction", "out_of_order_fraction", "late_fraction", "bad_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1, got {value}")
        if self.out_of_order_fraction + self.late_fraction > 1.0:
            problems.append("out_of_order_fraction + late_fraction must not exceed 1")
        if self.fraud_rate > 0.5:
            problems.append(f"fraud_rate above 0.5 is not traffic any more, got {self.fraud_rate}")
        unknown = sorted(set(self.bad_kinds) - set(BAD_KINDS))
        if unknown:
            problems.append(f"unknown bad-record kinds {unknown}; known: {', '.join(BAD_KINDS)}")
        if self.duration_ms is not None and self.duration_ms < 0:
            problems.append("duration must not be negative")
        if self.rate is not None and self.rate <= 0:
            problems.append(f"rate must be positive, got {self.rate}")
        if self.late_by_ms < 0:
            problems.append("late_by must not be negative")
        if self.chunk_size < 1:
            problems.append("chunk_size must be >= 1")
        if problems:
            raise GeneratorOptionsError("; ".join(problems))

    @property
    def effective_chunk_size(self) -> int:
        """Paced runs use chunks of ~0.1 s of traffic, so event times stay close to the moment of sending."""
        if self.rate is not None:
            return max(1, min(self.chunk_size, int(self.rate / 10)))
        return self.chunk_size


def plan_event_times(options: GeneratorOptions, clock: Callable[[], int] = wall_clock_ms) -> EventTimePlan:
    """The event-time plan the options describe.

    - start (and duration, default 1 day): a span in the past (or present), with daily cycles;
    - duration only: the span that ends now;
    - neither, with a rate: events stamped from now on at that rate (the producer paces to match);
    - neither, no rate: each chunk stamped with the wall clock.
    Valid events must not lie more than a day after now, or the expectation suite would reject them.
    """
    if options.start_ms is None and options.duration_ms is None:
        if options.rate is None:
            return WallClockPlan(clock)
        return SpanPlan(options.now_ms, round(options.count / options.rate * 1000), options.count, daily_cycle=False)
    duration = options.duration_ms if options.duration_ms is not None else DAY_MS
    start = options.start_ms if options.start_ms is not None else options.now_ms - duration
    if start + duration > options.now_ms + FUTURE_TOLERANCE_MS:
        raise TimeArgumentError(
            "start time + duration ends more than a day after now; the transactions expectation suite rejects "
            "event times that far ahead, so every event would be invalid"
        )
    return SpanPlan(start, duration, max(options.count, 1))


@dataclass(frozen=True)
class GeneratedChunk:
    """One chunk: its transactions in sending order and the labels that became known by its last event time."""

    index: int
    offset: int
    transactions: TransactionColumns
    labels: LabelColumns


class TransactionGenerator:
    """Yields :class:`GeneratedChunk` s until ``options.count`` transactions, then the remaining labels."""

    def __init__(self, options: GeneratorOptions, plan: EventTimePlan | None = None) -> None:
        self.options = options
        self.plan = plan if plan is not None else plan_event_times(options)
        population_seed = options.seed if options.population_seed is None else options.population_seed
        self.population: Population = build_population(
            np.random.default_rng([population_seed, 0]),
            options.cards,
            options.merchants,
            options.compromised_merchant_share,
        )
        self._fraud = FraudInjector(self.population, options.fraud_rate, options.fraud_mix)
        self._labels = LabelQueue()

    @property
    def bad_kinds(self) -> tuple[str, ...]:
        """The run's bad kinds; a row's ``bad_kind`` code indexes this tuple."""
        return self.options.bad_kinds

    def chunk_rng(self, index: int, stream: int = 1) -> np.random.Generator:
        return np.random.default_rng([self.options.seed, stream, index])

    def chunks(self) -> Iterator[GeneratedChunk]:
        options = self.options
        size = options.effective_chunk_size
        index = offset = 0
        while offset < options.count:
            n = min(size, options.count - offset)
            yield self._chunk(index, offset, n)
            index += 1
            offset += n
        remaining = self._labels.drain()
        if len(remaining):
            yield GeneratedChunk(index, offset, _empty_transactions(), remaining)

    def _chunk(self, index: int, offset: int, n: int) -> GeneratedChunk:
        options = self.options
        rng = self.chunk_rng(index)
        times = self.plan.times(rng, offset, n)
        chunk = legitimate_chunk(rng, self.population, times)
        chunk = self._fraud.inject(rng, chunk)
        _shift_times(rng, chunk, options)
        mark_bad_rows(rng, chunk, options.bad_fraction, options.bad_kinds)
        if set(options.bad_kinds) & set(INVALID_KINDS):
            apply_invalid_values(rng, chunk, options.bad_kinds, options.now_ms)
        self._labels.push(labels_for(rng, chunk, self.population, options.genuine_label_fraction))
        released = self._labels.release(int(times.max()) if n else options.now_ms)
        return GeneratedChunk(index, offset, chunk, released)


def _shift_times(rng: np.random.Generator, chunk: TransactionColumns, options: GeneratorOptions) -> None:
    """Move some event times back without moving the rows: they arrive out of order, or late by ``late_by``."""
    draw = rng.random(len(chunk))
    out_of_order = draw < options.out_of_order_fraction
    late = (draw >= options.out_of_order_fraction) & (draw < options.out_of_order_fraction + options.late_fraction)
    if out_of_order.any():
        chunk.event_time[out_of_order] -= rng.integers(1_000, OUT_OF_ORDER_MAX_MS, int(out_of_order.sum()))
        chunk.out_of_order[out_of_order] = True
    if late.any():
        chunk.event_time[late] -= options.late_by_ms
        chunk.late[late] = True


def _empty_transactions() -> TransactionColumns:
    empty_obj = np.array([], dtype=object)
    empty_int = np.array([], dtype=np.int64)
    return TransactionColumns(
        event_id=empty_obj,
        card=empty_int,
        merchant=empty_int,
        amount=np.array([], dtype=np.float64),
        currency=empty_obj,
        mcc=empty_obj,
        country=empty_obj,
        channel=np.array([], dtype=np.int8),
        event_time=empty_int,
        device_id=empty_obj,
        fraud=np.array([], dtype=np.int8),
        out_of_order=np.array([], dtype=bool),
        late=np.array([], dtype=bool),
        bad_kind=np.array([], dtype=np.int8),
    )
