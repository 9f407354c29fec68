"""The ceiling: a bare aiokafka consume loop over every quote partition. No decoding, no Redis.

What it measures is what the client library and the broker can deliver on this machine; the
other consumers are compared with it. Its latency is publish -> fetched, from the Kafka record
timestamp (millisecond resolution, so it reads up to 1 ms high), since it decodes nothing. Like
every reader of market data it follows the generations (``common.generations.Follower``).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from common.generations.follower import Follower, Start
from common.topics import Topics
from marketfeed.bench.consumers.roles.base import ConsumerRole, WorkerParams
from marketfeed.bench.consumers.roles.tracking import ConsumerTracker
from marketfeed.bench.core.clients import open_consumer


async def open_at_end(
    params: WorkerParams,
    client_id: str,
    tracker: ConsumerTracker,
    resources: contextlib.AsyncExitStack,
) -> Follower:
    """A reader of every quote partition, positioned at the end of the newest generation (no
    group: nothing to join). Its consumer's stop goes in ``resources``."""
    consumer = await open_consumer(
        resources,
        bootstrap=params.bootstrap,
        client_id=client_id,
        fetch_max_wait_ms=params.fetch_max_wait_ms,
        connect_timeout=params.connect_timeout,
    )
    follower = Follower(consumer, Topics(prefix=params.topic_prefix).quotes)
    # The broker's "end" may be a little short of the true end (Tansu's ListOffsets answers the
    # start of the last record batch); the warm-up consumes the difference.
    placed = await follower.place(dict.fromkeys(range(params.partitions), Start.END))
    tracker.positions.update(placed)
    return follower


class BareRole(ConsumerRole):
    async def _consume(self) -> list[int]:
        follower = await open_at_end(self.params, "bench-bare", self.tracker, self.resources)
        self._run_loop(self._run(follower), "bare")
        return list(range(self.params.partitions))

    async def _run(self, follower: Follower) -> None:
        tracker = self.tracker
        while True:
            chunks = await follower.fetch(timeout_ms=200)
            now_ns = time.time_ns()
            for partition, chunk in chunks.items():
                records = chunk.records
                moved = len(records) + (chunk.marker is not None)
                tracker.done(partition, chunk.next, chunk.last.timestamp, moved)
                tracker.counts["received"] += len(records)
                stamps = np.fromiter((r.timestamp for r in records), np.int64, len(records))
                tracker.latencies_ns(now_ns, stamps * 1_000_000)
