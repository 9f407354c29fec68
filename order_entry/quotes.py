"""The quotes order_entry decides against: its cache's, and never an empty cache's.

A quote missing from the cache is an answer (``NO_QUOTE``) only if the cache is whole. While it
is rebuilt after its Redis came back empty, or when a command finds that Redis empty before the
cache noticed (the cache checks its id with each batch and heartbeat), the command waits until
the cache is warm again, as it does while a rebalance refills it.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Protocol

from common.cache.reader import CachedQuote, QuoteReader


class QuoteCache(Protocol):
    """What order_entry needs to know of the quote cache it reads (``CachingConsumer``)."""

    @property
    def warm(self) -> bool: ...  # it holds its interest: not being rebuilt

    @property
    def instance(self) -> str: ...  # its id, as written in its Redis

    async def wait_warm(self) -> None: ...

    def lost(self) -> None: ...  # its Redis was found without it: rebuild now


class WarmQuotes:
    def __init__(
        self, reader: QuoteReader, *, cache: QuoteCache | None, tradable: Set[str]
    ) -> None:
        """``cache``: the cache behind ``reader`` if this process runs it (else the reader's
        answer is taken as it is)."""
        self.reader = reader
        self.cache = cache
        self.tradable = tradable

    async def wait_warm(self) -> None:
        if self.cache is not None:
            await self.cache.wait_warm()

    async def get(self, symbol: str) -> CachedQuote | None:
        """The cached quote of ``symbol``, or None if a whole cache has none."""
        cached = await self.reader.get(symbol)
        cache = self.cache
        if cached is not None or cache is None or symbol not in self.tradable:
            return cached
        if cache.warm:
            meta = await self.reader.meta()
            if meta.get("instance") == cache.instance:
                return None  # the cache is whole: there is no quote
            cache.lost()
        await cache.wait_warm()
        return await self.reader.get(symbol)
