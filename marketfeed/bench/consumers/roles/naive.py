"""The naive consumer: every partition, decode every record, one Redis SET per record.

This is the obvious first implementation of a quote cache, and the baseline the caching
consumer is measured against: no partition selection, no filtering before decoding, no
conflation, no pipelining (each SET is awaited before the next record is looked at). It
writes into its own Redis (or its own key prefix), under the same key layout as a cache.
"""

from __future__ import annotations

import time

import numpy as np
import redis.asyncio as aioredis
import redis.exceptions

from common.cache.keys import CacheKeys
from common.errors import CacheUnavailableError, SchemaError
from common.generations.follower import Follower
from common.generations.position import Position
from common.schema import decode_quote
from marketfeed.bench.consumers.roles.bare import open_at_end
from marketfeed.bench.consumers.roles.base import ConsumerRole, WorkerParams


class NaiveRole(ConsumerRole):
    def __init__(self, params: WorkerParams) -> None:
        super().__init__(params)
        self.keys = CacheKeys(params.redis_prefix)

    async def _consume(self) -> list[int]:
        p = self.params
        # No read timeout: a SET in flight when the benchmark freezes this process (its pause)
        # must complete on resume, not time out because the wall clock jumped meanwhile.
        client = aioredis.Redis.from_url(p.redis_url, socket_connect_timeout=2, socket_timeout=None)
        self.resources.push_async_callback(client.aclose)
        try:
            await client.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise CacheUnavailableError(
                f"naive consumer: cannot reach {p.redis_url}: {exc}"
            ) from None
        follower = await open_at_end(p, "bench-naive", self.tracker, self.resources)
        self._run_loop(self._run(follower, client), "naive")
        return list(range(p.partitions))

    async def _run(self, follower: Follower, client: aioredis.Redis) -> None:
        tracker, keys = self.tracker, self.keys
        while True:
            chunks = await follower.fetch(timeout_ms=200)
            for partition, chunk in chunks.items():
                records = chunk.records
                published: list[int] = []
                readable: list[int] = []
                for record in records:
                    value = record.value or b""
                    try:
                        quote = decode_quote(value)
                    except SchemaError:
                        tracker.counts["bad"] += 1
                    else:
                        await client.set(keys.quote(quote.symbol), value)
                        readable.append(time.time_ns())
                        published.append(quote.ts_ns)
                    # Per record: a status request between two SETs sees the exact position.
                    following = Position(chunk.generation, record.offset + 1)
                    tracker.done(partition, following, record.timestamp, 1)
                if chunk.marker is not None:
                    tracker.done(partition, chunk.next, chunk.marker.timestamp, 1)
                tracker.counts["received"] += len(records)
                tracker.counts["decoded"] += len(published)
                tracker.counts["applied"] += len(published)
                tracker.latencies_ns(np.asarray(readable, dtype=np.int64), published)
