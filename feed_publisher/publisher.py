"""The publisher: simulated market -> paced, partitioned, msgpack records on Kafka.

Lifecycle: ``start()`` creates the topics and connects (retrying an unreachable broker with
backoff), ``run()`` publishes until stopped, ``stop()`` flushes what was sent and disconnects;
``stop()`` is safe to call twice, and ``async with`` does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaProducer

from common.kafka import ensure_topics, market_data_topics, with_backoff
from common.lifecycle import Lifecycle
from common.metrics import LatencyHistogram
from common.partitioner import partition_for
from feed_publisher.config import PublisherConfig
from feed_publisher.frames import FrameEncoder
from feed_publisher.market import MarketSimulator
from feed_publisher.pacer import Pacer
from feed_publisher.sink import BatchSink
from feed_publisher.snapshot import SnapshotResponder
from feed_publisher.universe import universe

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherStats:
    generated: int
    sent: int
    acked: int
    failed: int
    elapsed_s: float
    lateness_p99_ms: float
    snapshots_served: int = 0  # snapshot requests answered
    snapshots_rejected: int = 0  # snapshot requests that were not valid requests


class Publisher(Lifecycle):
    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        # A later publisher process has a larger epoch, so consumers can tell a restart (seq
        # starts again at 1) from a regression.
        self.epoch = time.time_ns() // 1_000_000
        self.symbols = universe(config.symbols)
        self.market = MarketSimulator(
            config.symbols, seed=self.seed, trade_ratio=config.trade_ratio
        )
        partition_of = np.array([partition_for(s, config.partitions) for s in self.symbols])
        self.encoder = FrameEncoder(self.symbols, partition_of.astype(np.int64), self.epoch)
        self.lateness = LatencyHistogram(resolution_us=100)
        self.generated = 0
        self._producer: AIOKafkaProducer | None = None
        self._sink: BatchSink | None = None
        self._started_at = 0.0
        self._pacer: Pacer | None = None
        self.responder: SnapshotResponder | None = None

    @property
    def sink(self) -> BatchSink:
        if self._sink is None:
            raise RuntimeError("publisher not started")
        return self._sink

    async def _start(self) -> None:
        if self._producer is not None:
            return
        cfg = self.config
        await ensure_topics(cfg, market_data_topics(cfg))
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            client_id="feed_publisher",
            acks="all",
            enable_idempotence=cfg.idempotence,
            linger_ms=cfg.linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30000,
        )
        # Registered before it starts, and before the responder: whatever fails after, the
        # producer is closed, and what was sent is flushed before it is.
        self.resources.push_async_callback(producer.stop)
        await with_backoff(
            "publisher", producer.start, bootstrap=cfg.bootstrap, timeout=cfg.connect_timeout
        )
        self._producer = producer
        sink = self._sink = BatchSink(producer)
        self.resources.push_async_callback(sink.flush)
        if cfg.snapshots:
            self.responder = SnapshotResponder(cfg, epoch=self.epoch)
            sink.on_ack(self.responder.on_ack)
            await self.resources.enter_async_context(self.responder)
        log.info(
            "publishing %d symbols at %.0f msg/s to %s (epoch %d, seed %d)",
            cfg.symbols,
            cfg.rate,
            cfg.bootstrap,
            self.epoch,
            self.seed,
        )

    async def stop(self) -> None:
        """Stop answering snapshots, flush what was sent, disconnect. Safe to call twice."""
        started, self._producer = self._producer is not None, None
        await super().stop()
        if started:
            s = self.stats()
            log.info(
                "stopped: %d sent, %d acked, %d failed; snapshots: %d served, %d rejected",
                s.sent,
                s.acked,
                s.failed,
                s.snapshots_served,
                s.snapshots_rejected,
            )

    def set_rate(self, rate: float) -> None:
        if self._pacer is not None:
            self._pacer.set_rate(rate)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish on schedule until ``stop`` is set or the configured duration has passed."""
        cfg = self.config
        sink = self.sink
        topics = cfg.topics
        pacer = self._pacer = Pacer(cfg.rate, max_batch=cfg.max_batch)
        self._started_at = time.monotonic()
        deadline = self._started_at + cfg.duration if cfg.duration else float("inf")
        # Messages due within one cycle go out together, in bigger record batches. Off by
        # default: at 10k msg/s on the embedded broker a 10 ms cycle did not measurably change
        # how far consumers lag (marketfeed bench orders, cache lag 4.9 s off vs 6.6 s on).
        cycle = cfg.cycle_ms / 1000
        last_send = -cycle
        while not stop.is_set() and time.monotonic() < deadline:
            n = pacer.due()
            now = time.monotonic()
            if n == 0 or (n < pacer.max_batch and now - last_send < cycle):
                # Sleep until the next message or cycle is due, but wake for stop within 50 ms.
                wait = min(
                    max(pacer.wait_time(), last_send + cycle - now),
                    0.05,
                    max(0.0, deadline - now),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            last_send = now
            first, last = pacer.intended(n)
            ticks = self.market.step(n)
            ts_ns = time.time_ns()
            self._record_lateness(first, last, n)
            pacer.release(n)
            self.generated += n
            await sink.send(topics.quotes, self.encoder.quotes(ticks.quotes, ts_ns).by_partition)
            if len(ticks.trades.symbol):
                await sink.send(
                    topics.trades, self.encoder.trades(ticks.trades, ts_ns).by_partition
                )
            # Yield even when behind, so acknowledgements and stop requests are processed.
            await asyncio.sleep(0)

    def _record_lateness(self, first: float, last: float, n: int) -> None:
        now = time.monotonic()
        self.lateness.record_seconds(now - np.linspace(first, last, n))

    def stats(self) -> PublisherStats:
        sink = self._sink
        return PublisherStats(
            generated=self.generated,
            sent=sink.sent if sink else 0,
            acked=sink.acked if sink else 0,
            failed=sink.failed if sink else 0,
            elapsed_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            lateness_p99_ms=self.lateness.percentiles().p99_ms,
            snapshots_served=self.responder.requests_served if self.responder else 0,
            snapshots_rejected=self.responder.requests_rejected if self.responder else 0,
        )
