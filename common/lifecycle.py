"""The one lifecycle every long-lived part follows: ``start()``, ``stop()``, ``async with``.

``stop()`` must be safe to call twice and after a failed ``start()``; ``async with`` calls
``stop()`` whatever happened inside the block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Self


class Lifecycle:
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

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


async def first_of(*waits: Awaitable[None]) -> None:
    """Until the first of ``waits`` ends (its error raised); the others are cancelled.

    A service is alive while all its children are: the first to end ends it.
    """
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
