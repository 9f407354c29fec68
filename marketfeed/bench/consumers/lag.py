"""Lag of every consumer under test, sampled from outside (the verdicts are in ``verdicts``).

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
