"""order_entry: keeps the quotes of its tradable symbols in its own Redis."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from common.cache import CachingConsumer
from order_entry.config import OrderEntryConfig

log = logging.getLogger("order_entry")

SERVICE = "order_entry"


class OrderEntryService:
    def __init__(self, config: OrderEntryConfig, *, tradable: Iterable[str]) -> None:
        self.config = config
        self.tradable = frozenset(tradable)
        self.cache = CachingConsumer(config, service=SERVICE, interest=self.tradable)
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.cache)
        log.info(
            "order_entry caching %d tradable symbols (%s)",
            len(self.tradable),
            self.cache.start_mode,
        )

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
