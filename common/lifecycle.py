"""The one lifecycle every long-lived part follows: ``start()``, ``stop()``, ``async with``.

A part implements ``_start()`` and, if closing what ``_start()`` registered in ``resources`` is
not all there is to it, ``stop()``. The guard lives here, once: ``start()`` runs ``_start()``
and, if that fails or is cancelled half-way, calls ``stop()`` before re-raising, so a failed
start never leaves a producer, a consumer or a task behind. ``stop()`` must therefore be safe
to call twice, before ``start()`` and after a failed one; ``async with`` calls it whatever
happened inside the block.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

# How long a cancelled task gets before it is cancelled again.
_CANCEL_AGAIN_S = 1.0


class Lifecycle:
    _resources: contextlib.AsyncExitStack | None = None

    @property
    def resources(self) -> contextlib.AsyncExitStack:
        """What ``_start()`` opened, each pushed with how to close it; closed newest first."""
        if self._resources is None:
            self._resources = contextlib.AsyncExitStack()
        return self._resources

    async def start(self) -> None:
        """Run ``_start()``; if it fails or is cancelled, stop what it started, then re-raise.

        That stop runs to its end even if the caller is cancelled again meanwhile (as
        ``cancel_and_wait`` does each second): cut short, it would leave open whatever it had
        not reached yet.
        """
        try:
            await self._start()
        except BaseException:
            await uninterrupted(self.stop())
            raise

    async def _start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Close everything in ``resources``, newest first. Safe to call twice."""
        stack, self._resources = self._resources, None
        if stack is not None:
            await stack.aclose()

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


async def uninterrupted(work: Awaitable[T]) -> T:
    """Await ``work`` to its end, even if the caller is cancelled meanwhile.

    For clean-up that must not be cut short. A cancellation that arrives meanwhile is held
    back and raised once ``work`` is done. ``work`` must be bounded: nothing can stop it.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise  # ``work`` itself was cancelled
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


async def first_of(*waits: Awaitable[object]) -> None:
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


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """``cancel_and_wait`` each of ``tasks`` at once; their own errors are not raised.

    For tasks a part spawned and owns (subscriptions, timers) whose outcome nobody awaits: a
    stop only needs them gone.
    """
    await asyncio.gather(*(cancel_and_wait(t) for t in list(tasks)), return_exceptions=True)
