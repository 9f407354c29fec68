"""Latency histograms (HdrHistogram) that take whole numpy arrays of samples at a time.

Recording one sample at a time costs about a microsecond in pure Python, too much on a hot path
that handles thousands of messages per batch. Samples are quantised to a resolution (10 µs by
default) and recorded as (value, count) pairs, so a batch costs one ``np.unique``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

# One hour in microseconds: anything slower is a stall, recorded at the ceiling.
_MAX_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p99.9_ms": self.p999_ms,
            "max_ms": self.max_ms,
        }


class LatencyHistogram:
    """Microsecond latencies, reported in milliseconds."""

    def __init__(self, *, resolution_us: int = 10) -> None:
        self.resolution_us = resolution_us
        self._h = HdrHistogram(1, _MAX_US, 3)

    def record_seconds(self, samples: npt.ArrayLike, counts: npt.ArrayLike | None = None) -> None:
        """Record latencies in seconds; ``counts``: how many times each one (default once)."""
        us = np.asarray(samples, dtype=np.float64) * 1e6
        if us.size == 0:
            return
        q = np.clip(np.round(us / self.resolution_us), 1, _MAX_US // self.resolution_us)
        if counts is None:
            values, times = np.unique(q.astype(np.int64) * self.resolution_us, return_counts=True)
        else:
            values, where = np.unique(q.astype(np.int64) * self.resolution_us, return_inverse=True)
            times = np.bincount(where, weights=np.asarray(counts, dtype=np.float64))
        for value, count in zip(values.tolist(), times.astype(np.int64).tolist(), strict=True):
            if count > 0:
                self._h.record_value(value, count)

    def encode(self) -> bytes:
        """The histogram, compressed (a few KB): to keep many windows and merge them later."""
        data: bytes = self._h.encode()
        return data

    @classmethod
    def decode(cls, data: bytes, *, resolution_us: int = 10) -> LatencyHistogram:
        histogram = cls(resolution_us=resolution_us)
        histogram._h.decode_and_add(data)
        return histogram

    def add(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def reset(self) -> None:
        self._h.reset()

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentiles(self) -> Percentiles:
        h = self._h
        # One pass over the counts for all four (hdrh walks them in pure Python, once per
        # percentile asked one at a time: a third to two thirds of the time this way).
        at = h.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
        return Percentiles(
            count=self.count,
            p50_ms=float(at.get(50.0, 0)) / 1000.0,
            p90_ms=float(at.get(90.0, 0)) / 1000.0,
            p99_ms=float(at.get(99.0, 0)) / 1000.0,
            p999_ms=float(at.get(99.9, 0)) / 1000.0,
            max_ms=float(h.get_max_value()) / 1000.0 if self.count else 0.0,
        )
