"""order_entry: keeps the quotes of its tradable symbols in its own Redis and answers orders.

Owns two children, started in this order and stopped in reverse: the quote cache (so that the
first order already finds quotes) and the order processor (a faust app, ``processor.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import redis.asyncio as aioredis

from common.cache import CachingConsumer
from order_entry.config import OrderEntryConfig
from order_entry.processor import OrderProcessor

log = logging.getLogger("order_entry")

SERVICE = "order_entry"


class OrderEntryService:
    def __init__(
        self, config: OrderEntryConfig, *, tradable: Iterable[str], orders: bool = True
    ) -> None:
        self.config = config
        self.tradable = frozenset(tradable)
        self.cache = CachingConsumer(config, service=SERVICE, interest=self.tradable)
        # Its own connection: order lookups must not queue behind the cache's batched writes.
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self.orders = (
            OrderProcessor(config, tradable=self.tradable, redis_client=self.redis, service=SERVICE)
            if orders
            else None
        )
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        try:
            self._stack.push_async_callback(self.redis.aclose)
            await self._stack.enter_async_context(self.cache)
            log.info(
                "order_entry caching %d tradable symbols (%s)",
                len(self.tradable),
                self.cache.start_mode,
            )
            if self.orders is not None:
                self._stack.push_async_callback(self.orders.stop)
                await self.orders.start()
        except BaseException:
            await self.stop()
            raise

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
