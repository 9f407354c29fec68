"""What a worker process of the consumer benchmark is given, and what each of its roles does.

A worker is launched from a WorkerParams (every setting a flag on its command line, see
marketfeed.bench.core.children), so that no ``MARKETFEED_*`` variable in the environment can
quietly change what it measures. It plays one Role: started (``info`` then says what the
benchmark needs to know of it), asked requests (``handle``), stopped. A consumer under test is
a ConsumerRole: its consume loop runs as one task, whose end means the consumer died.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from common.config import known_log_level, non_negative, positive, setting
from common.feedsign import FeedSettings
from common.lifecycle import Lifecycle, cancel_and_wait
from marketfeed.bench.consumers.roles.tracking import ConsumerTracker


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerParams(FeedSettings):
    symbols: int = setting(1000, help="symbols of the simulated market", check=positive)
    seed: int = setting(1, help="random seed of the simulated market (the publisher's)")
    log_level: str = setting("WARNING", help="log level", check=known_log_level)
    rate: float | None = setting(
        None, help="the publisher's rate, msg/s (none: unthrottled)", check=positive
    )
    cycle_ms: float = setting(
        10.0, help="the publisher's --cycle-ms (sends at most once per)", check=non_negative
    )
    fetch_max_wait_ms: int = setting(5, help="fetch_max_wait_ms of a consumer", check=positive)
    # A consumer that writes to Redis does so under its own key prefix.
    redis_url: str = setting("", help="Redis of a consumer that writes to one", secret=True)
    redis_prefix: str = setting("", help="prefix of every Redis key a consumer writes")
    interest: int = setting(
        0, help="the caching consumer follows the first N symbols", check=non_negative
    )


class Role(Lifecycle, abc.ABC):
    """One part a worker plays. ``stop()`` closes what ``_start()`` put in ``resources``."""

    def __init__(self, params: WorkerParams) -> None:
        self.params = params
        # What the worker says when ready, beside "ready": true.
        self.info: dict[str, Any] = {}

    @abc.abstractmethod
    async def handle(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Answer one request; ValueError for one it does not understand."""


class ConsumerRole(Role):
    """A consumer under test: the benchmark's ``status``/``begin``/``end`` come from its
    tracker, which its consume loop feeds."""

    def __init__(self, params: WorkerParams) -> None:
        super().__init__(params)
        self.tracker = ConsumerTracker()
        self._loop: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        self.info = {"partitions": await self._consume()}

    @abc.abstractmethod
    async def _consume(self) -> list[int]:
        """Connect (what to close goes in ``resources``), start the consume loop with
        ``_run_loop``; return the partitions it consumes."""

    def _run_loop(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        """Run the consume loop as this role's task; ``stop()`` cancels it first."""
        self._loop = asyncio.create_task(loop, name=name)
        self.resources.push_async_callback(cancel_and_wait, self._loop)

    def check(self) -> None:
        """Raise if the consume loop died (so that a request reports it, not a silence)."""
        if self._loop is not None and self._loop.done():
            self._loop.result()
            raise RuntimeError("the consume loop ended")

    async def handle(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        self.check()
        if cmd == "status":
            return self.tracker.status()
        if cmd == "begin":
            self.tracker.begin()
            return {}
        if cmd == "end":
            return self.tracker.end()
        raise ValueError(f"unknown request {cmd!r}")
