"""Paces sends to a target rate and remembers when each message was meant to go out.

A publisher that falls behind must not quietly slow the schedule down (coordinated omission):
message ``i`` is due at ``start + i / rate`` whatever happened before, so a stall shows up as
lateness of every message it delayed, and the publisher then catches up in bigger batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self, rate: float, *, max_batch: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or max_batch <= 0:
            raise ValueError("rate and max_batch must be positive")
        self._clock = clock
        self.max_batch = max_batch
        self.rate = rate
        self.start = clock()
        self.released = 0

    def set_rate(self, rate: float) -> None:
        """Start a new schedule at ``rate`` from now (the benchmark steps through rates)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.start = self._clock()
        self.released = 0

    def due(self) -> int:
        """How many messages are due now and not yet released (at most ``max_batch``)."""
        # Message k is due at start + k / rate, so at time t messages 0..floor(t * rate) are.
        owed = math.floor((self._clock() - self.start) * self.rate) + 1 - self.released
        return max(0, min(owed, self.max_batch))

    def intended(self, n: int) -> tuple[float, float]:
        """Intended send times (clock seconds) of the first and last of the next ``n``."""
        first = self.start + self.released / self.rate
        return first, first + (n - 1) / self.rate

    def release(self, n: int) -> None:
        self.released += n

    def wait_time(self) -> float:
        """Seconds until the next message is due (0 when one is due already)."""
        next_at = self.start + self.released / self.rate
        return max(0.0, next_at - self._clock())
