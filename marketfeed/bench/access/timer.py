"""Timing one call after another: latencies into an HdrHistogram, failures counted apart."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from common.metrics import LatencyHistogram


class Timer:
    def __init__(self, *, resolution_us: int) -> None:
        self.samples: list[float] = []
        self.failed = 0
        self.seconds = 0.0  # spent in the calls: calls per second is their count over it
        self._resolution_us = resolution_us

    async def time(self, attempt: Awaitable[bool]) -> None:
        """Time ``attempt`` (a coroutine not yet started); False is a failure, not timed."""
        start = time.perf_counter()
        ok = await attempt
        spent = time.perf_counter() - start
        self.seconds += spent
        if ok:
            self.samples.append(spent)
        else:
            self.failed += 1

    def percentiles(self) -> dict[str, float]:
        histogram = LatencyHistogram(resolution_us=self._resolution_us)
        histogram.record_seconds(self.samples)
        return histogram.percentiles().as_dict()
