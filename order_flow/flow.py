"""Sending the simulated order flow: the pacer, the producer, the quotes that price limits.

What to send comes from :mod:`order_flow.mix` (seeded, so ``--seed`` repeats the same orders);
this module owns the sending: the pacer, the producer, the quotes that price limit orders, the
counters and the lifecycle.

Pacing: order *i* is due at ``start + i / rate`` (``feed_publisher.pacer``), so a driver that
stalls catches up rather than quietly sending fewer orders, and its lateness behind that
schedule is measured. Records are keyed by symbol (``common.topics.symbol_key``) like every
order. Order ids are ``flow-<run>-<seq>``: the run part (start time in ms) keeps a second run
with the same seed from being taken for duplicates by order_entry's ledger.

Limit orders are priced against the quote in order_entry's cache (``--redis-url``), the same
quotes order_entry validates against. Without a cache, or without a quote for the symbol yet,
the order goes out as a market order, so the sequence of orders never depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.cache.reader import QuoteReader
from common.collectors import BatchHistogram, ServiceCollector
from common.errors import CacheUnavailableError
from common.exposition import new_registry, open_metrics
from common.kafka import TopicSpec, close_producer, ensure_topics, with_backoff
from common.kafkasec import connection
from common.lifecycle import Lifecycle, cancel_and_wait
from common.metrics import LatencyHistogram
from common.schema import NewOrder, Quote
from common.topics import symbol_key
from feed_publisher.pacer import Pacer
from order_flow.config import OrderFlowConfig
from order_flow.metrics import FlowMetrics
from order_flow.mix import Intent, Kind, OrderMix, account_names, limit_price

log = logging.getLogger("order_flow")

SERVICE = "order_flow"

STATS_EVERY_S = 5.0
# Orders released in one cycle when the driver is behind its schedule.
MAX_BATCH = 100


@dataclass(frozen=True, slots=True)
class FlowStats:
    sent: int
    acked: int
    failed: int
    unpriced: int  # limit orders sent at market for want of a quote
    by_kind: dict[str, int]
    elapsed_s: float
    lateness_p99_ms: float


class OrderFlow(Lifecycle):
    """Owns the producer and the quote reader; ``run()`` sends on schedule until stopped."""

    def __init__(self, config: OrderFlowConfig, *, tradable: Sequence[str]) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self.run_id = str(time.time_ns() // 1_000_000)
        self.mix = OrderMix(
            tradable=tradable,
            accounts=account_names(config.accounts),
            max_qty=config.max_qty,
            limit_ratio=config.limit_ratio,
            bad_ratio=config.bad_ratio,
            seed=self.seed,
        )
        self.lateness = LatencyHistogram(resolution_us=100)
        self.lateness_buckets = BatchHistogram(
            "order_flow_lateness_seconds", "how late orders were sent behind the schedule"
        )
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.unpriced = 0
        self.by_kind: Counter[str] = Counter()
        self._started_at = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._quotes: QuoteReader | None = None
        self.registry = new_registry()
        self.registry.register(ServiceCollector(SERVICE, FlowMetrics(self)))

    async def _start(self) -> None:
        cfg = self.config
        await open_metrics(self.resources, cfg, self.registry, service=SERVICE)
        topics = cfg.topics
        # Creates nothing when order_entry runs; refuses a partition count that breaks routing.
        await ensure_topics(
            cfg,
            [
                TopicSpec(topics.orders_commands, cfg.partitions),
                TopicSpec(topics.orders_events, cfg.partitions),
            ],
        )
        if cfg.redis_url is not None:
            quotes = QuoteReader.from_url(cfg.redis_url, prefix=cfg.redis_prefix)
            self.resources.push_async_callback(quotes.aclose)
            self._quotes = quotes
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            client_id="marketfeed-order-flow",
            acks="all",
            **connection(cfg),
        )
        # Registered before start: a start that fails half-way still closes what it opened.
        self.resources.push_async_callback(close_producer, producer)
        await with_backoff(
            "order_flow",
            producer.start,
            bootstrap=cfg.bootstrap,
            timeout=cfg.connect_timeout,
            security=cfg,
        )
        self._producer = producer
        log.info(
            "sending %.4g orders/s from %d accounts over %d symbols to %s (seed %d, run %s)",
            cfg.orders_rate,
            len(self.mix.accounts),
            len(self.mix.tradable),
            topics.orders_commands,
            self.seed,
            self.run_id,
        )

    async def stop(self) -> None:
        """Flush what was sent, then disconnect. Safe to call twice."""
        producer, self._producer = self._producer, None
        await super().stop()  # close_producer: flushes, bounded when the broker is gone
        self._quotes = None
        if producer is not None:
            s = self.stats()
            unacked = s.sent - s.acked - s.failed
            log.info(
                "stopped: %d sent, %d acked, %d failed%s; %s",
                s.sent,
                s.acked,
                s.failed,
                f", {unacked} never acknowledged" if unacked else "",
                ", ".join(f"{k} {n}" for k, n in sorted(s.by_kind.items())) or "nothing sent",
            )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Send on schedule until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        pacer = Pacer(self.config.orders_rate, max_batch=MAX_BATCH)
        self._started_at = time.monotonic()
        reporter = asyncio.create_task(self._report(), name="order-flow-stats")
        try:
            while not stop.is_set():
                n = pacer.due()
                if n == 0:
                    # Sleep until the next order is due, but wake for stop within 50 ms.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), min(pacer.wait_time(), 0.05))
                    continue
                first, _ = pacer.intended(n)
                late = []
                for i in range(n):
                    await self._send(self.mix.next())
                    late.append(time.monotonic() - (first + i / pacer.rate))
                pacer.release(n)
                self.lateness.record_seconds(late)
                self.lateness_buckets.observe(late)
        finally:
            await cancel_and_wait(reporter)

    async def _report(self) -> None:
        last_sent, last_t = 0, 0.0
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            s = self.stats()
            rate = (s.sent - last_sent) / max(s.elapsed_s - last_t, 1e-9)
            last_sent, last_t = s.sent, s.elapsed_s
            log.info(
                "sent %d (%.1f orders/s), acked %d, failed %d, at market for want of a quote "
                "%d, lateness p99 %.1f ms",
                s.sent,
                rate,
                s.acked,
                s.failed,
                s.unpriced,
                s.lateness_p99_ms,
            )

    async def _send(self, intent: Intent) -> None:
        assert self._producer is not None, "order flow not started"
        limit = None
        if intent.kind.priced:
            quote = await self._quote(intent.symbol)
            if quote is None:
                self.unpriced += 1
            else:
                limit = limit_price(intent, quote, limit_band=self.config.limit_band)
        order = NewOrder(
            order_id=f"flow-{self.run_id}-{intent.seq}",
            account=intent.account,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            limit=limit,
            ts_ns=time.time_ns(),
        )
        kind = intent.kind if limit is not None or not intent.kind.priced else Kind.MARKET
        self.by_kind[kind.value] += 1
        try:
            delivery = await self._producer.send(
                self.config.topics.orders_commands, order.encode(), key=symbol_key(order.symbol)
            )
        except KafkaError as exc:
            self.failed += 1
            log.warning("order %s not sent: %s", order.order_id, exc)
            return
        self.sent += 1
        delivery.add_done_callback(self._on_delivery)

    def _on_delivery(self, delivery: asyncio.Future[object]) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            self.failed += 1
            why = "cancelled" if delivery.cancelled() else delivery.exception()
            log.warning("order not acknowledged: %s", why)
        else:
            self.acked += 1

    async def _quote(self, symbol: str) -> Quote | None:
        if self._quotes is None:
            return None
        try:
            cached = await self._quotes.get(symbol)
        except CacheUnavailableError as exc:
            # Pricing is best effort: the flow goes on at market rather than stalling.
            log.warning("no quote for %s (%s); sending at market", symbol, exc)
            return None
        return None if cached is None else cached.quote

    def stats(self, *, lateness: bool = True) -> FlowStats:
        """The counters; ``lateness=False`` leaves ``lateness_p99_ms`` at 0 (a percentile of
        the HdrHistogram takes tens of ms: too much for each scrape of /metrics)."""
        return FlowStats(
            sent=self.sent,
            acked=self.acked,
            failed=self.failed,
            unpriced=self.unpriced,
            by_kind=dict(self.by_kind),
            elapsed_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            lateness_p99_ms=self.lateness.percentiles().p99_ms if lateness else 0.0,
        )
