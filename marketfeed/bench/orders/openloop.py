"""The open-loop schedule of an order run: when each order is due, and which are measured.

Order *i* is due at ``start + i / rate`` whatever happened before (the publisher's Pacer does
that arithmetic, here as there), and its latency is counted from that *intended* time, so a
driver or a system that falls behind shows up as latency instead of quietly sending less
(coordinated omission). A run lasts a warm-up and then a measurement window without a break in
its schedule; the orders intended inside the window are the measured ones. Every order due
before the end is sent, however late. I/O-free: the driver sends, this only counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from feed_publisher.pacer import Pacer


class OpenLoop:
    def __init__(
        self,
        rate: float,
        *,
        warmup: float,
        duration: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Orders 0..total-1 are due before the end; all of them are sent, however late, so
        # one batch may hold them all.
        self.total = math.ceil((warmup + duration) * rate)
        self.pacer = Pacer(rate, max_batch=max(1, self.total), clock=clock)
        self._clock = clock
        self.window_at = self.pacer.start + warmup
        self.end = self.window_at + duration

    def take_due(self) -> list[float]:
        """The intended times of the orders due now and not taken yet, oldest first."""
        due = min(self.pacer.due(), self.total - self.pacer.released)
        intended = []
        for _ in range(due):
            first, _ = self.pacer.intended(1)
            intended.append(first)
            self.pacer.release(1)
        return intended

    def measured(self, intended: float) -> bool:
        """Whether the order intended at ``intended`` falls in the measurement window."""
        return intended >= self.window_at

    def wait_time(self, *, window_open: bool) -> float:
        """Seconds to sleep: until the next order is due, or the window opens or ends first."""
        boundary = self.end if window_open else self.window_at
        return max(0.0, min(self.pacer.wait_time(), boundary - self._clock()))
