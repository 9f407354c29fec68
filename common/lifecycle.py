"""The one lifecycle every long-lived part follows: ``start()``, ``stop()``, ``async with``.

``stop()`` must be safe to call twice and after a failed ``start()``; ``async with`` calls
``stop()`` whatever happened inside the block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Self

# How long a cancelled task gets before it is cancelled again.
_CANCEL_AGAIN_S = 1.0


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
        await asyncio.gather(*(cancel_and_wait(t) for t in tasks), return_exceptions=True)


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again each second it runs on.

    One cancel is not always enough: library code can lose a cancellation (one that lands just
    as an awaited result arrives), and the task then runs on for good, with a ``stop()`` that
    awaited it once stuck behind it (seen here: a cache's ``stop()`` waited 90 s on its consuming
    loop). The task's own error, if it ended with one, is raised; a cancellation of the caller
    is not swallowed, unlike ``suppress(CancelledError)`` around ``await task``.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_CANCEL_AGAIN_S)
    if not task.cancelled():
        task.result()
