"""Running a long-lived service from its command line: stop on a signal, or when it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from common.cli import EXIT_OK, install_stop_signals
from common.lifecycle import cancel_and_wait


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def serve(service: Service, work: Callable[[], Awaitable[None]]) -> int:
    """Start ``service``, wait for SIGINT/SIGTERM or for ``work()`` to end, stop it.

    Signal handlers go in before start-up, so a stop request during a slow start (a snapshot,
    a broker that is still coming up) is a clean exit too, not the default signal death.
    An error in ``work`` propagates after the service is stopped.
    """
    stop = asyncio.Event()
    install_stop_signals(stop)
    starting = asyncio.ensure_future(service.start())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await cancel_and_wait(starting)
            return EXIT_OK
        starting.result()  # a failed start raises here
        task = asyncio.ensure_future(work())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await cancel_and_wait(task)
        elif not task.cancelled():
            task.result()  # re-raise what made the service stop on its own
        return EXIT_OK
    finally:
        await cancel_and_wait(stopper)
        await service.stop()
