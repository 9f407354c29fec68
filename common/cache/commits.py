"""Commits a quote cache's applied offsets to Kafka, in the background, for lag tools.

Commits exist only so that standard lag tools, which read a group's committed offsets, can see
the cache; the truth is in Redis. So a slow or stuck group coordinator must never hold up
applying quotes: at most one commit is in flight, a new one waits until the last has ended, and
the final one on close is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from common.lifecycle import cancel_and_wait

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 2.0


class OffsetCommitter:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        positions: Callable[[], Mapping[TopicPartition, int]],
        interval: float,
        counts: Counter[str],
        service: str,
    ) -> None:
        """Commit ``positions()`` (topic-partition -> next offset; a partition's topic is its
        generation's) every ``interval`` seconds (never if 0); failures are counted in
        ``counts["commit_errors"]``."""
        self._consumer = consumer
        self._positions = positions
        self._interval = interval
        self._counts = counts
        self._service = service
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def maybe_commit(self) -> None:
        """Start a commit if one is due and none is in flight; never waits."""
        now = time.monotonic()
        if self._interval <= 0 or now - self._last < self._interval:
            return
        if self._task is not None and not self._task.done():
            return
        self._last = now
        self._task = asyncio.create_task(self._commit())

    async def close(self) -> None:
        """Await the commit in flight, then commit once more; each bounded.

        The commit in flight is awaited, not cancelled, and the final one follows it: a
        cancelled aiokafka commit leaves its request in flight (it is shielded), and a second
        one racing it once hung the embedded broker for good.
        """
        task, self._task = self._task, None
        if task is not None and not await _finished(task):
            return
        if self._interval > 0:
            await _finished(asyncio.create_task(self._commit()))

    async def _commit(self) -> None:
        offsets = {tp: o for tp, o in self._positions().items() if o >= 0}
        if not offsets:
            return
        try:
            # No timeout here: see close(). aiokafka's own request timeout ends a stuck one.
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            self._counts["commit_errors"] += 1
            log.warning("%s: committing offsets failed: %r", self._service, exc)


async def _finished(task: asyncio.Task[None]) -> bool:
    """Wait a while for ``task``; cancel it if it is still running then."""
    done, _ = await asyncio.wait([task], timeout=_CLOSE_TIMEOUT_S)
    if done:
        return True
    await cancel_and_wait(task)  # _commit() handles Kafka's errors itself
    log.warning("a Kafka commit did not finish in %.0fs; left behind", _CLOSE_TIMEOUT_S)
    return False
