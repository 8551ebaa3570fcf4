"""Holding a producer to a rate, for real-time traffic and throttled replays."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Holds a producer to ``rate`` records per second (None: as fast as possible)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    def wait_for(self, produced: int) -> None:
        """Sleep until ``produced`` records are due."""
        if self.rate is None:
            return
        delay = self._start + produced / self.rate - self._clock()
        if delay > 0:
            self._sleep(delay)
