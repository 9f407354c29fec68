"""The Prometheus view of a caching consumer: its counters, lag per partition, e2e latency.

``CacheMetrics.applied`` is the consumer's ``on_applied`` hook: for each batch readable in
Redis it observes publish -> readable latency of the quotes written (one numpy array per batch;
a quote conflated away in the batch is not observed, its newer one is) and notes the Kafka
timestamp of the last record each partition moved past, filtered or not (its time lag: how far
behind the feed the partition's position is, whether or not its recent records were of
interest). Everything else is read from the consumer when
scraped: its ``counts``, positions and high watermarks, its Redis retry state.
"""

from __future__ import annotations

import time

import numpy as np

from common.cache.batch import PreparedBatch
from common.cache.consumer import CachingConsumer
from common.collectors import BatchHistogram, Families, per_partition

# consumer.counts key -> what the counter counts (``marketfeed_cache_KEY_total``).
COUNTS = {
    "received": "records fetched from the quote partitions, of every symbol",
    "filtered": "records dropped by key: symbols outside the interest",
    "applied": "quotes written to Redis (the newest per symbol of each batch)",
    "conflated": "quotes superseded by a newer one of the same symbol in the same batch",
    "stale": "quotes dropped as not newer than the cached one (duplicates, replays)",
    "gaps": "sequence gaps found (each filled by a snapshot of the symbol)",
    "dead_letters": "records sent to the dead-letter topic",
    "rollovers": "generation rollover markers crossed",
    "snapshots": "snapshots taken from the publisher's snapshot responder",
    "snapshot_quotes": "quotes written from snapshots",
    "gap_fills": "quotes written by the snapshots that filled gaps",
    "replays": "partitions replayed from the oldest generation (no snapshot answer)",
    "lost_generations": "times a generation was deleted before the cache read it to its end",
    "out_of_range": "times the broker answered offsets out of range (it lost its data)",
    "rebuilds": "rebuilds after its Redis came back empty",
    "commit_errors": "failed commits of applied offsets to the broker (lag tools' view)",
}


class CacheMetrics:
    def __init__(self) -> None:
        self.e2e = BatchHistogram(
            "cache_e2e_latency_seconds",
            "publish (the quote's ts_ns) to readable in the cache's Redis (EXEC returned)",
        )
        self.last_record_ms: dict[int, int] = {}
        self.consumer: CachingConsumer | None = None

    def applied(self, batch: PreparedBatch, applied_ns: int) -> None:
        """The consumer's ``on_applied`` hook."""
        quotes = batch.quotes
        if quotes:
            published = np.fromiter(
                (quote.ts_ns for quote, _ in quotes.values()), dtype=np.int64, count=len(quotes)
            )
            self.e2e.observe((applied_ns - published) / 1e9)
        for partition, progress in batch.progress.items():
            self.last_record_ms[partition] = progress.kafka_ts_ms

    def add_to(self, f: Families) -> None:
        """Its part of a scrape (a ``ServiceCollector`` part, once ``consumer`` is set)."""
        consumer = self.consumer
        if consumer is None:
            return
        f.counters(COUNTS, consumer.counts, "cache")
        f.gauge("cache_warm", "1 while the cache holds its whole interest", float(consumer.warm))
        f.gauge("cache_symbols", "symbols the cache follows", len(consumer.interest))
        positions, highs = consumer.positions, consumer.high_watermarks
        now_ns = time.time_ns()
        for label, offset in per_partition({p: pos.offset for p, pos in positions.items()}):
            partition = int(label)
            f.gauge(
                "cache_generation",
                "generation of md.quotes the partition is read in (0: the plain topic)",
                positions[partition].generation,
                partition=label,
            )
            high = highs.get(partition)
            if high is not None:
                f.gauge(
                    "cache_offset_lag",
                    "records of the partition's generation not applied yet (high watermark of "
                    "the last fetch minus the next offset)",
                    max(0, high - offset),
                    partition=label,
                )
            moved_past = self.last_record_ms.get(partition)
            if moved_past is not None:
                f.gauge(
                    "cache_time_lag_seconds",
                    "now minus the Kafka timestamp of the last record the partition moved past; "
                    "0 once it has applied all the broker had (an idle partition is not behind)",
                    time_lag_s(now_ns, moved_past, offset=positions[partition].offset, high=high),
                    partition=label,
                )
        f.retries("cache", {"redis": consumer.redis_retry})
        f.histogram(self.e2e)


def time_lag_s(now_ns: int, moved_past_ms: int, *, offset: int, high: int | None) -> float:
    """How far behind the feed a partition is, in seconds, as ``marketfeed lag`` says it: the
    age of the last record it moved past while records wait after it, and nothing once it has
    applied all the broker had. Without the second half, a partition whose feed went quiet
    would look further behind every second while it is fully caught up."""
    if high is not None and offset >= high:
        return 0.0
    return max(0.0, now_ns / 1e9 - moved_past_ms / 1e3)
