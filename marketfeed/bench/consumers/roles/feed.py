"""The feed under the consumers: the project's Publisher at one rate (or unthrottled).

Run in a worker process of its own so that, at high rates, its generating and encoding (a core's
worth at full speed) does not share an event loop, or a GIL, with anything being measured.
Per measurement window it reports the acknowledged rate and its lateness behind the intended
send times (the pacer's schedule, so a publisher that falls behind shows up: coordinated
omission); lateness means nothing when it is unthrottled, and is then not reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from common.lifecycle import cancel_all
from feed_publisher.publisher import Publisher
from marketfeed.bench.consumers.roles.base import Role, WorkerParams
from marketfeed.bench.core.servers import feed_config

log = logging.getLogger(__name__)

# The publisher's loop ends on its stop event after the cycle in hand; one that does not by
# then is cancelled, so that a stuck publisher cannot hold the worker's stop for good.
_STOP_GRACE_S = 5.0


class FeedRole(Role):
    def __init__(self, params: WorkerParams) -> None:
        super().__init__(params)
        self.paced = params.rate is not None
        self._publisher: Publisher | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._acked0 = 0
        self._failed0 = 0
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()

    async def _start(self) -> None:
        p = self.params
        # The params are the publisher's Kafka settings too: its topics are the run's.
        config = feed_config(
            p,
            symbols=p.symbols,
            rate=p.rate,
            seed=p.seed,
            cycle_ms=p.cycle_ms,
            log_level=p.log_level,
        )
        publisher = await self.resources.enter_async_context(Publisher(config))
        self._publisher = publisher
        self._task = asyncio.create_task(publisher.run(self._stop), name="publisher")
        self.resources.push_async_callback(self._end_run, self._task)
        self.info = {"epoch": publisher.epoch}

    async def _end_run(self, task: asyncio.Task[None]) -> None:
        self._stop.set()
        await asyncio.wait([task], timeout=_STOP_GRACE_S)
        await cancel_all([task])
        if not task.cancelled() and task.exception() is not None:
            log.warning("the publisher had stopped: %r", task.exception())

    def _running(self) -> Publisher:
        task, publisher = self._task, self._publisher
        assert task is not None, "publisher not started"
        assert publisher is not None, "publisher not started"
        if task.done():
            task.result()
            raise RuntimeError("the publisher stopped")
        return publisher

    async def handle(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        publisher = self._running()
        stats = publisher.stats()
        if cmd == "status":
            return {"acked": stats.acked, "failed": stats.failed}
        if cmd == "begin":
            publisher.lateness.reset()
            self._acked0, self._failed0 = stats.acked, stats.failed
            self._t0, self._cpu0 = time.monotonic(), time.process_time()
            return {}
        if cmd == "end":
            elapsed = time.monotonic() - self._t0
            lateness = publisher.lateness.percentiles().as_dict() if self.paced else None
            return {
                "acked": stats.acked - self._acked0,
                "failed": stats.failed - self._failed0,
                "elapsed_s": elapsed,
                "cpu_s": time.process_time() - self._cpu0,
                "lateness": lateness,
            }
        raise ValueError(f"unknown request {cmd!r}")
