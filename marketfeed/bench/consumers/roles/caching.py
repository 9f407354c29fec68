"""The consumer under test: the project's CachingConsumer, exactly as a service runs it.

It is measured only through its public hook, which is called once each batch is readable in
Redis (its MULTI/EXEC returned): every quote the batch applied gives one publish -> readable
sample, and the batch's per-partition progress gives the position and the time of the last
record done, filtered records included.

UnsignedCachingRole is the same consumer run with ``--insecure-unsigned-feed`` (the benchmark
gives it no key): a cache with no key accepts any record, signed ones included, and checks only
plausibility, so beside the other on the same signed feed it shows what verifying costs.
"""

from __future__ import annotations

import numpy as np

from common.cache import CacheSettings, CachingConsumer
from common.cache.batch import PreparedBatch
from feed_publisher.universe import universe
from marketfeed.bench.consumers.roles.base import ConsumerRole
from marketfeed.bench.core.clients import kafka_fields


class CachingRole(ConsumerRole):
    # Its own snapshot reply and dead-letter topics, apart from another caching role's.
    SERVICE = "bench_caching"

    async def _consume(self) -> list[int]:
        p = self.params
        settings = CacheSettings(
            **kafka_fields(p),
            feed_key=p.feed_key,
            insecure_unsigned_feed=p.insecure_unsigned_feed,
            redis_url=p.redis_url,
            redis_prefix=p.redis_prefix,
            fetch_max_wait_ms=p.fetch_max_wait_ms,
        )
        consumer = CachingConsumer(
            settings,
            service=self.SERVICE,
            interest=universe(p.symbols)[: p.interest],
            on_applied=self._applied,
        )
        await self.resources.enter_async_context(consumer)
        # Ends with the consumer's own task: how a request learns that the consumer died.
        self._run_loop(consumer.wait(), "caching-watch")
        partitions = sorted(consumer.assigned_partitions)
        # Where it starts: the positions its snapshot (or replay) placed it at.
        for partition, position in consumer.positions.items():
            self.tracker.positions.setdefault(partition, position)
        return partitions

    def _applied(self, batch: PreparedBatch, now_ns: int) -> None:
        tracker = self.tracker
        stamps = [quote.ts_ns for quote, _ in batch.quotes.values()]
        tracker.latencies_ns(now_ns, np.asarray(stamps, dtype=np.int64))
        for partition, progress in batch.progress.items():
            tracker.done(partition, progress.next, progress.kafka_ts_ms, progress.records)
        tracker.counts["received"] += batch.received
        tracker.counts["filtered"] += batch.filtered
        # Decoded and valid: applied, or dropped for a newer one in the batch, or stale.
        tracker.counts["decoded"] += len(batch.quotes) + batch.conflated + batch.stale
        tracker.counts["applied"] += len(batch.quotes)
        tracker.counts["conflated"] += batch.conflated
        tracker.counts["batches"] += 1


class UnsignedCachingRole(CachingRole):
    SERVICE = "bench_caching_unsigned"
