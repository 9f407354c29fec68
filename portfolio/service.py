"""portfolio: positions from the fills on ``orders.events``, marked with its own quote cache.

Owns, started in this order and stopped in reverse: a Redis connection (positions), the quote
cache (watchlist + every symbol traded), and the position keeper (a faust app, ``keeper.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import redis.asyncio as aioredis

from common.cache import CachingConsumer
from common.errors import MarketfeedError
from portfolio.config import PortfolioConfig
from portfolio.keeper import PositionKeeper
from portfolio.positions import PositionStore

log = logging.getLogger("portfolio")

SERVICE = "portfolio"


class PortfolioService:
    def __init__(
        self, config: PortfolioConfig, *, watchlist: Iterable[str], positions: bool = True
    ) -> None:
        self.config = config
        self.watchlist = frozenset(watchlist)
        self.cache = CachingConsumer(config, service=SERVICE, interest=self.watchlist)
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self.store = PositionStore(self.redis, prefix=config.redis_prefix)
        self.keeper = (
            PositionKeeper(config, store=self.store, on_new_symbol=self._subscribe, service=SERVICE)
            if positions
            else None
        )
        self._subscribing: set[asyncio.Task[None]] = set()
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        try:
            self._stack.push_async_callback(self.redis.aclose)
            await self._stack.enter_async_context(self.cache)
            held = {p.symbol for p in await self.store.all() if p.qty != 0}
            if held - self.cache.interest:
                # Positions survive a restart in Redis; so must the marks of what is held.
                await self.cache.add_interest(*held)
            log.info(
                "portfolio caching %d symbols (%d watchlist, %s)",
                len(self.cache.interest),
                len(self.watchlist),
                self.cache.start_mode,
            )
            self._stack.push_async_callback(self._cancel_subscriptions)
            if self.keeper is not None:
                self._stack.push_async_callback(self.keeper.stop)
                await self.keeper.start()
        except BaseException:
            await self.stop()
            raise

    def _subscribe(self, symbol: str) -> None:
        if symbol in self.cache.interest:
            return
        task = asyncio.create_task(self._add_interest(symbol), name=f"subscribe-{symbol}")
        self._subscribing.add(task)
        task.add_done_callback(self._subscribing.discard)

    async def _add_interest(self, symbol: str) -> None:
        try:
            await self.cache.add_interest(symbol)
            log.info("quote cache now follows %s (first fill)", symbol)
        except MarketfeedError as exc:
            log.warning("could not subscribe the quote cache to %s: %s", symbol, exc)

    async def _cancel_subscriptions(self) -> None:
        tasks = list(self._subscribing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def wait(self) -> None:
        await self.cache.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
