"""The publisher: simulated market -> paced, partitioned, msgpack records on Kafka.

Lifecycle: ``start()`` connects (retrying an unreachable broker with backoff), decides how the
market-data history is bounded (``--md-history``; ``auto``: generations on a broker that keeps
everything, ``common.generations``) and opens its topics: in generations mode a new generation,
every older one closed (``feed_publisher.closing``). ``run()`` publishes until stopped, rolling
generations as they fill (``feed_publisher.roller``); ``stop()`` flushes what was sent and
disconnects; ``stop()`` is safe to call twice, and ``async with`` does both.

A broker that stalls (frozen, gone, restarting): what was handed to the sink is held and resent
until acknowledged (``feed_publisher.sink``); the ticks that come due while the broker is
stalled (nothing acknowledged for ``--stall-after`` seconds, or a send failed) are dropped, not
generated: the simulated market stands still, so consumers see neither a gap in the sequence
numbers nor a burst of stale ticks when the broker is back. Dropped ticks are counted, and one
line is logged when dropping starts and one when it ends. A broker that acknowledges nothing
for ``--connect-timeout`` seconds ends the run with one line naming why.
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
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from common.collectors import BatchHistogram, ServiceCollector
from common.errors import BrokerUnavailableError
from common.exposition import MetricsServer, new_registry, open_metrics
from common.feedsign import feed_keys
from common.generations.naming import Generations, HistoryMode, require_no_generations, resolve_mode
from common.kafka import create_topics, market_data_topics, with_backoff
from common.kafkasec import connection
from common.lifecycle import Lifecycle
from common.metrics import LatencyHistogram
from common.partitioner import partition_for
from feed_publisher.closing import open_generation
from feed_publisher.config import PublisherConfig
from feed_publisher.frames import FrameEncoder
from feed_publisher.market import MarketSimulator
from feed_publisher.metrics import PublisherMetrics
from feed_publisher.pacer import Pacer
from feed_publisher.roller import GenerationRoller
from feed_publisher.sink import BatchSink
from feed_publisher.snapshot import SnapshotResponder
from feed_publisher.universe import universe

log = logging.getLogger(__name__)

SERVICE = "publisher"

# Topic creation and deletion (at a roll) hold up publishing while they wait: not for long.
_ADMIN_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class PublisherStats:
    generated: int
    sent: int
    acked: int
    failed: int  # never acknowledged, lost when the publisher stopped
    elapsed_s: float
    lateness_p99_ms: float
    snapshots_served: int = 0  # snapshot requests answered
    snapshots_rejected: int = 0  # snapshot requests that were not valid requests
    held: int = 0  # sent, not acknowledged yet
    dropped: int = 0  # ticks not generated while the broker was failing
    generation: int = 0  # being written (0: the plain topics, no generations)
    rolls: int = 0
    deleted: int = 0  # generations deleted
    delete_failures: int = 0


class Publisher(Lifecycle):
    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        # Resolved first: a missing or unreadable key is one line before anything connects.
        keys = feed_keys(config)
        self.signer = keys.signer() if keys is not None else None
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
        self.lateness_buckets = BatchHistogram(
            "publisher_lateness_seconds", "how late ticks were generated behind the schedule"
        )
        self.generated = 0
        self._producer: AIOKafkaProducer | None = None
        self._sink: BatchSink | None = None
        self._started_at = 0.0
        self._pacer: Pacer | None = None
        self.responder: SnapshotResponder | None = None
        self.roller: GenerationRoller | None = None
        self.mode: HistoryMode | None = None
        self.dropped = 0
        self._dropping_since: float | None = None
        self._dropped_before = 0
        self.registry = new_registry()
        self.registry.register(ServiceCollector(SERVICE, PublisherMetrics(self)))
        self.metrics_server: MetricsServer | None = None

    @property
    def sink(self) -> BatchSink:
        if self._sink is None:
            raise RuntimeError("publisher not started")
        return self._sink

    @property
    def sink_or_none(self) -> BatchSink | None:
        return self._sink

    @property
    def generation(self) -> int:
        """The generation being written; 0 without generations (the plain topics)."""
        return self.roller.generation if self.roller is not None else 0

    async def _start(self) -> None:
        if self._producer is not None:
            return
        cfg = self.config
        # First: a publisher still waiting for its broker already says so.
        self.metrics_server = await open_metrics(
            self.resources, cfg, self.registry, service=SERVICE
        )
        # Registered before they start, and before the responder: whatever fails after, each is
        # closed, and what was sent is flushed before the producer is.
        admin = AIOKafkaAdminClient(
            bootstrap_servers=cfg.bootstrap,
            request_timeout_ms=min(cfg.send_timeout_ms, _ADMIN_TIMEOUT_MS),
            client_id="feed_publisher",
            **connection(cfg),
        )
        self.resources.push_async_callback(admin.close)
        await with_backoff(
            "publisher admin",
            admin.start,
            bootstrap=cfg.bootstrap,
            timeout=cfg.connect_timeout,
            security=cfg,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            client_id="feed_publisher",
            acks="all",
            enable_idempotence=cfg.idempotence,
            linger_ms=cfg.linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=cfg.send_timeout_ms,
            **connection(cfg),
        )
        self.resources.push_async_callback(producer.stop)
        await with_backoff(
            "publisher",
            producer.start,
            bootstrap=cfg.bootstrap,
            timeout=cfg.connect_timeout,
            security=cfg,
        )
        self._producer = producer
        sink = self._sink = BatchSink(
            producer,
            bootstrap=cfg.bootstrap,
            give_up_after=cfg.connect_timeout,
            stall_after=cfg.stall_after,
            signer=self.signer,
        )
        await self.resources.enter_async_context(sink)
        generation = await self._open_topics(admin, sink)
        if cfg.snapshots:
            self.responder = SnapshotResponder(
                cfg, epoch=self.epoch, generation=generation, signer=self.signer
            )
            sink.on_ack(self.responder.on_ack)
            await self.resources.enter_async_context(self.responder)
        log.info(
            "publishing %d symbols at %.0f msg/s to %s (epoch %d, seed %d; %s)",
            cfg.symbols,
            cfg.rate,
            cfg.bootstrap,
            self.epoch,
            self.seed,
            f"generation {generation}" if generation else "no generations: retention",
        )

    async def _open_topics(self, admin: AIOKafkaAdminClient, sink: BatchSink) -> int:
        """Decide the history mode and open the topics; the generation to write (0: none)."""
        cfg = self.config
        try:
            cluster = await admin.describe_cluster()
            names = await admin.list_topics()
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot describe Kafka at {cfg.bootstrap}: {exc}"
            ) from None
        self.mode = resolve_mode(cfg.md_history, cluster.get("cluster_id"))
        if self.mode is HistoryMode.RETENTION:
            for base in cfg.topics.market_data:
                require_no_generations(Generations.from_names(base, names))
            retention_ms = int(cfg.retention_s * 1000)
            await create_topics(admin, cfg, market_data_topics(cfg, retention_ms=retention_ms))
            return 0
        generation = await open_generation(cfg, admin, sink, epoch=self.epoch)
        assert self._producer is not None
        self.roller = GenerationRoller(
            cfg, sink, admin, self._producer, epoch=self.epoch, generation=generation
        )
        await self.resources.enter_async_context(self.roller)
        return generation

    async def stop(self) -> None:
        """Stop answering snapshots, flush what was sent, disconnect. Safe to call twice."""
        started, self._producer = self._producer is not None, None
        await super().stop()
        if started:
            s = self.stats()
            log.info(
                "stopped: %d sent, %d acked, %d lost, %d dropped; generation %d (%d rolls, %d "
                "deleted); snapshots: %d served, %d rejected",
                s.sent,
                s.acked,
                s.failed,
                s.dropped,
                s.generation,
                s.rolls,
                s.deleted,
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
        pacer = self._pacer = Pacer(cfg.rate, max_batch=cfg.max_batch)
        self._started_at = time.monotonic()
        deadline = self._started_at + cfg.duration if cfg.duration else float("inf")
        # Messages due within one cycle go out together, in bigger record batches: the number
        # of batches a partition holds is what the embedded broker's fetch cost grows with.
        cycle = cfg.cycle_ms / 1000
        last_send = -cycle
        while not stop.is_set() and time.monotonic() < deadline:
            sink.check()
            if self.roller is not None:
                self.roller.maybe_roll()
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
            if sink.stalled:
                self._drop(pacer, n)
            else:
                self._publish(pacer, n)
                await sink.room(cfg.max_held)
            # Yield even when behind, so acknowledgements and stop requests are processed.
            await asyncio.sleep(0)

    def _publish(self, pacer: Pacer, n: int) -> None:
        """Generate the ``n`` ticks due and hand them to the sink."""
        self._dropping_ended()
        topics, sink, generation = self.config.topics, self.sink, self.generation
        first, last = pacer.intended(n)
        ticks = self.market.step(n)
        ts_ns = time.time_ns()
        self._record_lateness(first, last, n)
        pacer.release(n)
        self.generated += n
        sink.send(topics.quotes, generation, self.encoder.quotes(ticks.quotes, ts_ns).by_partition)
        if len(ticks.trades.symbol):
            sink.send(
                topics.trades, generation, self.encoder.trades(ticks.trades, ts_ns).by_partition
            )

    def _drop(self, pacer: Pacer, n: int) -> None:
        """The broker is failing: the ``n`` ticks due are not generated (the market stands
        still) rather than piled up behind what is held."""
        if self._dropping_since is None:
            self._dropping_since, self._dropped_before = time.monotonic(), self.dropped
            log.warning(
                "Kafka is not acknowledging: dropping the ticks that come due until it does "
                "(%d records held, to be resent)",
                self.sink.held,
            )
        pacer.release(n)
        self.dropped += n

    def _dropping_ended(self) -> None:
        if self._dropping_since is None:
            return
        log.warning(
            "publishing again after %.1fs: %d ticks dropped meanwhile",
            time.monotonic() - self._dropping_since,
            self.dropped - self._dropped_before,
        )
        self._dropping_since = None

    def _record_lateness(self, first: float, last: float, n: int) -> None:
        now = time.monotonic()
        late = now - np.linspace(first, last, n)
        self.lateness.record_seconds(late)
        if self.config.metrics_on:  # nobody would read it
            self.lateness_buckets.observe(late)

    def stats(self, *, lateness: bool = True) -> PublisherStats:
        """The counters; ``lateness=False`` leaves ``lateness_p99_ms`` at 0: a percentile of the
        HdrHistogram takes tens of ms (pure Python), too much for each scrape of /metrics."""
        sink, roller = self._sink, self.roller
        return PublisherStats(
            generated=self.generated,
            sent=sink.sent if sink else 0,
            acked=sink.acked if sink else 0,
            failed=sink.lost if sink else 0,
            elapsed_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            lateness_p99_ms=self.lateness.percentiles().p99_ms if lateness else 0.0,
            snapshots_served=self.responder.requests_served if self.responder else 0,
            snapshots_rejected=self.responder.requests_rejected if self.responder else 0,
            held=sink.held if sink else 0,
            dropped=self.dropped,
            generation=self.generation,
            rolls=roller.rolls if roller else 0,
            deleted=roller.deleted if roller else 0,
            delete_failures=roller.delete_failures if roller else 0,
        )
