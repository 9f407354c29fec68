"""portfolio: positions from the fills on ``orders.events``, marked with its own quote cache.

Owns, started in this order and stopped in reverse: a Redis connection (positions), the quote
cache (watchlist + every symbol held), the subscription tasks, and the position keeper (a faust
app, ``keeper.py``).

The cache follows what is held: a fill that opens a position in a symbol it does not follow
subscribes it (snapshot first, then updates); a symbol that no account holds any more, and
that is not on the watchlist, is unsubscribed and its quote evicted ``--evict-after`` seconds
later, unless a position opens again in the meantime (a trader who flattens and re-enters does
not pay for a snapshot each time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

import redis.asyncio as aioredis

from common.cache import CachingConsumer
from common.cache.metrics import CacheMetrics
from common.collectors import ServiceCollector
from common.errors import MarketfeedError
from common.exposition import new_registry, open_metrics
from common.lifecycle import Lifecycle, cancel_all, first_of
from common.redisconn import unreachable
from portfolio.config import PortfolioConfig
from portfolio.keeper import PositionKeeper, positions_retry
from portfolio.metrics import PositionMetrics
from portfolio.positions import Position, PositionStore

log = logging.getLogger("portfolio")

SERVICE = "portfolio"


class PortfolioService(Lifecycle):
    def __init__(self, config: PortfolioConfig, *, watchlist: Iterable[str]) -> None:
        self.config = config
        self.watchlist = frozenset(watchlist)
        self.cache_metrics = CacheMetrics()
        self.cache = self.cache_metrics.consumer = CachingConsumer(
            config,
            service=SERVICE,
            group_id=config.group_id(SERVICE, "quote-cache"),
            interest=self.watchlist,
            on_applied=self.cache_metrics.applied,
        )
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self.store = PositionStore(self.redis, prefix=config.redis_prefix)
        # One for this Redis, shared with the keeper: an outage is logged once, not per user.
        self.store_retry = positions_retry(config, SERVICE)
        self.keeper = PositionKeeper(
            config,
            store=self.store,
            on_position=self._on_position,
            service=SERVICE,
            store_retry=self.store_retry,
        )
        # symbol -> accounts with a non-zero position in it
        self.holders: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._evictions: dict[str, asyncio.Task[None]] = {}
        self.registry = new_registry()
        self.registry.register(ServiceCollector(SERVICE, self.cache_metrics, PositionMetrics(self)))

    async def _start(self) -> None:
        # First: a process still waiting for its Redis or broker already says so.
        await open_metrics(self.resources, self.config, self.registry, service=SERVICE)
        self.resources.push_async_callback(self.redis.aclose)
        # Positions survive a restart in Redis; so must the marks of what is held.
        positions = await self.store_retry.run(
            self.store.all,
            what="loading positions",
            timeout=self.config.connect_timeout,
            give_up=unreachable(self.config.redis_url),
        )
        for p in positions:
            if p.qty != 0:
                self.holders.setdefault(p.symbol, set()).add(p.account)
        self.cache.initial_interest(self.watchlist | self.held)
        await self.resources.enter_async_context(self.cache)
        log.info(
            "portfolio caching %d symbols (%d watchlist, %d held, %s)",
            len(self.cache.interest),
            len(self.watchlist),
            len(self.held),
            self.cache.start_mode,
        )
        self.resources.push_async_callback(self._cancel_tasks)
        await self.resources.enter_async_context(self.keeper)

    @property
    def held(self) -> frozenset[str]:
        return frozenset(s for s, accounts in self.holders.items() if accounts)

    def _on_position(self, position: Position) -> None:
        symbol = position.symbol
        accounts = self.holders.setdefault(symbol, set())
        if position.qty != 0:
            accounts.add(position.account)
            pending = self._evictions.pop(symbol, None)
            if pending is not None:
                pending.cancel()
            # ``wanted``, not ``interest``: an eviction may have asked already, not yet applied.
            if symbol not in self.cache.wanted:
                self._spawn(self._subscribe(symbol), f"subscribe-{symbol}")
            return
        accounts.discard(position.account)
        if not accounts and symbol not in self.watchlist and symbol not in self._evictions:
            task = self._spawn(self._evict_later(symbol), f"evict-{symbol}")
            self._evictions[symbol] = task

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _subscribe(self, symbol: str) -> None:
        try:
            await self.cache.add_interest(symbol)
            log.info("quote cache now follows %s (a position opened)", symbol)
        except MarketfeedError as exc:
            log.warning("could not subscribe the quote cache to %s: %s", symbol, exc)

    async def _evict_later(self, symbol: str) -> None:
        try:
            await asyncio.sleep(self.config.evict_after)
            if self.holders.get(symbol) or symbol in self.watchlist:
                return
            await self.cache.remove_interest(symbol)
            log.info(
                "quote cache no longer follows %s (flat for %gs)", symbol, self.config.evict_after
            )
        except MarketfeedError as exc:
            log.warning("could not unsubscribe the quote cache from %s: %s", symbol, exc)
        finally:
            if self._evictions.get(symbol) is asyncio.current_task():
                del self._evictions[symbol]

    async def _cancel_tasks(self) -> None:
        # Subscriptions log their own errors; a stop only needs them gone.
        await cancel_all(self._tasks)
        self._evictions.clear()

    async def wait(self) -> None:
        """Until the quote cache or the position keeper cannot go on (raises why)."""
        await first_of(self.cache.wait(), self.keeper.fail_stop.wait())
