"""Event-time plans: where on the time axis generated events fall, and parsing of the CLI's time arguments.

Two plans. A span spreads events over [start, start + duration) following a daily cycle (quiet nights, busy
lunchtimes and evenings), in event-time order, identically for a given seed: this is how history in the
past is created. Wall clock stamps each chunk with the current time: real-time traffic.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from pipelines.errors import FeaturestreamError

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Relative card-payment intensity per UTC hour: low at night, peaks around lunch and early evening.
DAILY_PROFILE = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 0.95, 1.00, 1.10,
     1.30, 1.25, 1.05, 1.00, 1.05, 1.20, 1.35, 1.30, 1.10, 0.85, 0.60, 0.40]
)  # fmt: skip

_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}


class TimeArgumentError(FeaturestreamError):
    """A start time or duration the generator cannot understand."""


def parse_duration(text: str) -> int:
    """``"90m"``, ``"12h"``, ``"3d"``, ``"45s"``, ``"1w"``, ``"250ms"`` -> milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise TimeArgumentError(f"cannot read duration {text!r}: use a number and a unit, like 90m, 12h, 3d, 45s")
    return round(float(match["value"]) * _UNIT_MS[match["unit"]])


def parse_start_time(text: str) -> int:
    """An ISO 8601 date or date-time (``2024-05-01``, ``2024-05-01T08:00:00Z``) -> epoch ms; naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TimeArgumentError(f"cannot read start time {text!r}: use ISO 8601, like 2024-05-01T08:00:00Z") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class EventTimePlan(Protocol):
    def times(self, rng: np.random.Generator, offset: int, n: int) -> np.ndarray:
        """Sorted event times (epoch ms, int64) for events ``offset .. offset + n - 1`` of the run."""
        ...


@dataclass(frozen=True)
class SpanPlan:
    """``total`` events over [start_ms, start_ms + duration_ms), denser at busy hours, in event-time order.

    Event k of the run sits at the inverse of the cumulative intensity evaluated at a random quantile inside
    its own slice [k/total, (k+1)/total): chunks can be generated one after another and still be globally
    ordered, and the result does not depend on the chunk size's effect on anything but the draws.
    """

    start_ms: int
    duration_ms: int
    total: int
    daily_cycle: bool = True

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        end = self.start_ms + self.duration_ms
        first_hour = (self.start_ms // HOUR_MS + 1) * HOUR_MS
        inner = np.arange(first_hour, end, HOUR_MS, dtype=np.int64)
        edges = np.concatenate(([self.start_ms], inner, [end])).astype(np.int64)
        if self.daily_cycle:
            hours = (edges[:-1] // HOUR_MS) % 24
            weights = DAILY_PROFILE[hours] * np.diff(edges)
        else:
            weights = np.diff(edges).astype(np.float64)
        cumulative = np.concatenate(([0.0], np.cumsum(weights)))
        return edges, cumulative / max(cumulative[-1], 1e-12)

    def times(self, rng: np.random.Generator, offset: int, n: int) -> np.ndarray:
        if self.duration_ms <= 0:
            return np.full(n, self.start_ms, dtype=np.int64)
        edges, cumulative = self._grid()
        quantiles = np.sort((offset + np.arange(n) + rng.random(n)) / self.total)
        return np.interp(quantiles, cumulative, edges.astype(np.float64)).astype(np.int64)


@dataclass(frozen=True)
class WallClockPlan:
    """Real time: every event of a chunk is stamped with the wall clock when the chunk is generated."""

    clock: Callable[[], int] = wall_clock_ms

    def times(self, rng: np.random.Generator, offset: int, n: int) -> np.ndarray:
        return np.full(n, self.clock(), dtype=np.int64)
