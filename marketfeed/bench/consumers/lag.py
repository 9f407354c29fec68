"""Lag of every consumer under test, sampled from outside, and what the samples say.

Offset lag = the records after the consumer's position, across generations (the rest of its
generation and every later one: ``common.generations.position.offset_lag``), summed over the
partitions it consumes (the position is what it has *done*: applied to Redis, or received for
the bare loop; never a committed offset, which saw-tooths). Time lag = the worker's clock when
it reported its position - the timestamp of the last record done, on the stalest partition
that has records waiting; a partition with none waiting has no time lag, so a quiet feed reads
as idle, not as hours behind. What was published and what a consumer has done are counted
across generations (deleted ones included), for rates.

The positions are asked of the workers while the high watermarks are read, at the same time:
reading exact watermarks takes a fetch round trip (tens of ms on a busy machine), and asking
first would count every record published meanwhile as lag. What is left is a small bias
towards more lag, never less. A frozen (paused) worker cannot answer; its position is the one
it had when frozen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.generations.naming import GenerationWatch
from common.generations.position import Position, offset_lag, partition_ends
from common.watermarks import WatermarkReader
from marketfeed.bench.consumers.workers import Worker


@dataclass(frozen=True, slots=True)
class Lag:
    offset: int  # records published to its partitions and not yet done
    time_ms: float  # 0 when nothing is waiting
    done: int  # records it has done so far, in all (only differences mean something)
    published: int  # records published to its partitions so far, in all (likewise)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # time.monotonic()
    published: int  # records published to every partition of the topic so far, in all
    lags: dict[str, Lag]


class LagSampler:
    def __init__(
        self, reader: WatermarkReader, topic: str, consumers: Mapping[str, Worker]
    ) -> None:
        self.reader = reader
        self.topic = topic
        # The benchmark's live mapping: a retired consumer disappears from it.
        self.consumers = consumers
        self._status: dict[str, dict[str, Any]] = {}
        self._feed = GenerationWatch()

    async def sample(self) -> Sample:
        live = [(n, w) for n, w in self.consumers.items() if not w.suspended]
        marks, *answers = await asyncio.gather(
            self.reader.generation_marks(self.topic), *(w.call("status") for _, w in live)
        )
        for (name, _), answer in zip(live, answers, strict=True):
            self._status[name] = answer
        t = time.monotonic()
        self._feed.update(marks)
        now_ms = time.time_ns() / 1e6
        lags = {}
        for name, worker in self.consumers.items():
            status = self._status.get(name, {})
            # A frozen worker's report is from before it froze: its time lag grows with ours.
            at = now_ms if worker.suspended else float(status.get("now_ms", now_ms))
            lags[name] = _lag(status, worker.info["partitions"], marks, self._feed, at)
        return Sample(t=t, published=self._feed.published, lags=lags)


def _lag(
    status: dict[str, Any],
    partitions: Sequence[int],
    marks: Mapping[tuple[int, int], int],
    feed: GenerationWatch,
    now_ms: float,
) -> Lag:
    positions = {int(p): Position(*o) for p, o in status.get("positions", {}).items()}
    stamps = {int(p): t for p, t in status.get("last_ts_ms", {}).items()}
    offset = 0
    time_ms = 0.0
    for p in partitions:
        # A position the worker has not reported yet counts as "nothing done": all of it is lag.
        waiting = offset_lag(positions.get(p, Position(0, 0)), partition_ends(marks, p))
        offset += waiting
        if waiting > 0 and p in stamps:
            time_ms = max(time_ms, now_ms - stamps[p])
    return Lag(
        offset=offset,
        time_ms=max(time_ms, 0.0),
        done=int(status.get("records_done", 0)),
        published=feed.published_on(partitions),
    )


@dataclass(frozen=True, slots=True)
class LagStats:
    offset_p99: float
    offset_max: int
    time_p99_ms: float
    time_max_ms: float
    # Offset lag at the start and at the end of the window, in seconds of feed.
    start_s: float
    end_s: float
    bounded: bool


def lag_stats(lags: Sequence[Lag], feed_rate: float, bound_s: float) -> LagStats:
    """Percentiles of the lag over a window, and whether it stayed bounded.

    Bounded: at the end of the window the consumer is less than ``bound_s`` of feed behind, and
    it has fallen behind by less than half of that since the start. The ends are medians of
    the first and last fifths of the samples, so that one slow fetch does not decide. Over a
    10 s window with the default 1 s bound, a consumer 5% slower than the feed fails the
    second test; the broker's own jitter here (a few tenths of a second) does not.
    """
    offsets = np.array([lag.offset for lag in lags], dtype=np.float64)
    times = np.array([lag.time_ms for lag in lags], dtype=np.float64)
    if offsets.size == 0:
        return LagStats(0.0, 0, 0.0, 0.0, 0.0, 0.0, bounded=True)
    k = max(1, offsets.size // 5)
    per_s = max(feed_rate, 1.0)
    start = float(np.median(offsets[:k])) / per_s
    end = float(np.median(offsets[-k:])) / per_s
    return LagStats(
        offset_p99=float(np.percentile(offsets, 99)),
        offset_max=int(offsets.max()),
        time_p99_ms=float(np.percentile(times, 99)),
        time_max_ms=float(times.max()),
        start_s=start,
        end_s=end,
        bounded=end <= bound_s and end - start <= bound_s / 2,
    )


def caught_up_level(lags: Sequence[Lag], feed_rate: float) -> float:
    """Offset lag at or below which a resumed consumer counts as caught up.

    Back within its own steady range (the 99th percentile of its lag during the step), but
    never asking for less than 100 ms of feed (catch-up is sampled every 100 ms) or 50 records.
    """
    steady = float(np.percentile([lag.offset for lag in lags], 99)) if lags else 0.0
    return max(steady, 0.1 * feed_rate, 50.0)
