"""portfolio: keeps the quotes of its watchlist symbols in its own Redis."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from common.cache import CachingConsumer
from portfolio.config import PortfolioConfig

log = logging.getLogger("portfolio")

SERVICE = "portfolio"


class PortfolioService:
    def __init__(self, config: PortfolioConfig, *, watchlist: Iterable[str]) -> None:
        self.config = config
        self.watchlist = frozenset(watchlist)
        self.cache = CachingConsumer(config, service=SERVICE, interest=self.watchlist)
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.cache)
        log.info(
            "portfolio caching %d watchlist symbols (%s)",
            len(self.watchlist),
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
