"""Running a long-lived service from its command line: stop on a signal, or when it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from common.cli import EXIT_OK, install_stop_signals


async def run_until_stopped(work: Awaitable[None]) -> int:
    """Wait for SIGINT/SIGTERM or for ``work`` to end; an error in ``work`` propagates."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        task.result()  # re-raise what made the service stop on its own
    return EXIT_OK
