"""What every consumer under test reports, measured the same way whatever the consumer does.

- position: per partition, the next record it will consume, as (generation, offset)
  (``common.generations``; everything before it is done: readable in Redis for the caching
  and naive consumers, received for the bare loop), and how many records it has done in all
  (rollover markers included), for rates across generations;
- the Kafka timestamp of the last record done per partition, for the time lag (the producer
  stamps it when it appends the record, so it is the publish time to the millisecond, and the
  bare loop, which decodes nothing, has it too);
- publish -> readable latency samples, in an HdrHistogram per measurement window;
- counts (received, decoded, applied, conflated, ...) and the process's CPU time per window.

A consumer role (caching, naive, bare) owns its consumer and feeds this; it answers the
benchmark's ``status``/``begin``/``end`` requests from it (marketfeed.bench.consumers.roles.base).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from common.generations.position import Position
from common.metrics import LatencyHistogram


class ConsumerTracker:
    def __init__(self) -> None:
        self.positions: dict[int, Position] = {}
        self.last_ts_ms: dict[int, int] = {}
        self.records_done = 0
        self.latency = LatencyHistogram()
        self.counts: Counter[str] = Counter()
        self._began = time.monotonic()
        self._cpu0 = time.process_time()

    def done(self, partition: int, following: Position, timestamp_ms: int, count: int) -> None:
        """``count`` more records of ``partition`` are done; it goes on at ``following``."""
        self.positions[partition] = following
        self.last_ts_ms[partition] = timestamp_ms
        self.records_done += count

    def latencies_ns(self, now_ns: int | npt.NDArray[np.int64], ts_ns: npt.ArrayLike) -> None:
        # Whole arrays at a time: one np.unique per batch instead of a histogram call per record.
        self.latency.record_seconds((now_ns - np.asarray(ts_ns, dtype=np.int64)) / 1e9)

    def status(self) -> dict[str, Any]:
        return {
            "now_ms": time.time_ns() / 1e6,
            "positions": {str(p): [o.generation, o.offset] for p, o in self.positions.items()},
            "last_ts_ms": {str(p): t for p, t in self.last_ts_ms.items()},
            "records_done": self.records_done,
        }

    def begin(self) -> None:
        self.latency.reset()
        self.counts.clear()
        self._began = time.monotonic()
        self._cpu0 = time.process_time()

    def end(self) -> dict[str, Any]:
        return {
            "latency": self.latency.percentiles().as_dict(),
            "counts": dict(self.counts),
            "elapsed_s": time.monotonic() - self._began,
            "cpu_s": time.process_time() - self._cpu0,
        }
