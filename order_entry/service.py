"""order_entry: keeps the quotes of its tradable symbols in its own Redis and answers orders.

Owns, started in this order and stopped in reverse: the Redis connections (quote lookups, and
the order ledger when it lives elsewhere), the quote cache (so that the first order already
finds quotes) and the order processor (a faust app, ``processor.py``).

The cache starts with every tradable symbol; once the order group has assigned this process
its order partitions it keeps only the tradable symbols on those partitions, and it follows
every rebalance. Several order_entry processes thus split the quote feed as they split orders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis

from common.cache import CachingConsumer
from common.cache.metrics import CacheMetrics
from common.collectors import ServiceCollector
from common.exposition import new_registry, open_metrics
from common.lifecycle import Lifecycle, first_of
from common.partitioner import partition_for
from order_entry.config import OrderEntryConfig
from order_entry.metrics import OrderMetrics
from order_entry.processor import OrderProcessor

log = logging.getLogger("order_entry")

SERVICE = "order_entry"


class OrderEntryService(Lifecycle):
    def __init__(self, config: OrderEntryConfig, *, tradable: Iterable[str]) -> None:
        self.config = config
        self.tradable = frozenset(tradable)
        self.cache_metrics = CacheMetrics()
        self.cache = self.cache_metrics.consumer = CachingConsumer(
            config,
            service=SERVICE,
            group_id=config.group_id(SERVICE, "quote-cache"),
            interest=self.tradable,
            on_applied=self.cache_metrics.applied,
        )
        # Its own connection: order lookups must not queue behind the cache's batched writes.
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self.ledger_redis = (
            aioredis.Redis.from_url(config.ledger_url, socket_connect_timeout=2, socket_timeout=5)
            if config.ledger_url is not None
            else None
        )
        self.orders = OrderProcessor(
            config,
            tradable=self.tradable,
            redis_client=self.redis,
            ledger_client=self.ledger_redis,
            on_assigned=self._follow_assignment,
            service=SERVICE,
            cache=self.cache,
        )
        self.registry = new_registry()
        self.registry.register(
            ServiceCollector(SERVICE, self.cache_metrics, OrderMetrics(self.orders))
        )

    async def _start(self) -> None:
        # First: a process still waiting for its Redis or broker already says so.
        await open_metrics(self.resources, self.config, self.registry, service=SERVICE)
        self.resources.push_async_callback(self.redis.aclose)
        if self.ledger_redis is not None:
            self.resources.push_async_callback(self.ledger_redis.aclose)
        await self.resources.enter_async_context(self.cache)
        log.info(
            "order_entry caching %d tradable symbols (%s)",
            len(self.tradable),
            self.cache.start_mode,
        )
        await self.resources.enter_async_context(self.orders)

    def symbols_for(self, partitions: frozenset[int]) -> frozenset[str]:
        count = self.config.partitions
        return frozenset(s for s in self.tradable if partition_for(s, count) in partitions)

    async def _follow_assignment(self, partitions: frozenset[int]) -> None:
        symbols = self.symbols_for(partitions)
        if symbols != self.cache.interest:
            await self.cache.set_interest(symbols)
        log.info(
            "order partitions %s: caching %d of %d tradable symbols on quote partitions %s",
            sorted(partitions),
            len(symbols),
            len(self.tradable),
            sorted(self.cache.assigned_partitions),
        )

    async def wait(self) -> None:
        """Until the quote cache or the order processor cannot go on (raises why)."""
        await first_of(self.cache.wait(), self.orders.fail_stop.wait())
