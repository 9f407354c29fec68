"""Counters a service keeps, told to its operator: a log line now and then, and one on stop.

A counter nobody reads is dead weight; one that is only in memory dies with the process. So a
part that counts what it did hands a ``describe()`` of its counters to a ``PeriodicReport``,
which logs it every few seconds while it changes (a quiet service stays quiet) and once more
when the part stops, whatever the last periodic line said.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.lifecycle import Lifecycle, cancel_and_wait

EVERY_S = 5.0


class PeriodicReport(Lifecycle):
    def __init__(
        self,
        describe: Callable[[], str],
        *,
        logger: logging.Logger,
        prefix: str = "",
        final: str = "stopped: ",
        every: float = EVERY_S,
    ) -> None:
        """Log ``prefix`` + ``describe()`` every ``every`` seconds if it changed, and
        ``final`` + ``describe()`` on stop."""
        self._describe = describe
        self._logger = logger
        self._prefix = prefix
        self._final = final
        self._every = every
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="periodic-report")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
        self._logger.info("%s%s", self._final, self._describe())

    async def _run(self) -> None:
        last = self._describe()
        while True:
            await asyncio.sleep(self._every)
            line = self._describe()
            if line != last:
                self._logger.info("%s%s", self._prefix, line)
                last = line
