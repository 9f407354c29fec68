"""Probe orders: one market order every ~100 ms, to see when a process starts answering.

While order_entry processes join their group, a Prober sends one order at a time through an
OrderDriver, cycling through symbols (which can be changed at any time, e.g. to the symbols of
the partitions a new process was given), and keeps every answer with its latency. The join
measurement asks it questions: when was the first order FILLED, was one on these partitions
filled after that time, how long were orders held while the group rebalanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.lifecycle import Lifecycle, cancel_and_wait
from common.schema.orders import ORDER_FILLED_TYPE
from marketfeed.bench.orders.driver import OrderDriver


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    symbol: str
    sent: float  # time.monotonic()
    answered: float
    kind: str  # the terminal event's type

    @property
    def filled(self) -> bool:
        return self.kind == ORDER_FILLED_TYPE

    @property
    def latency_s(self) -> float:
        return self.answered - self.sent


class Prober(Lifecycle):
    def __init__(self, driver: OrderDriver, symbols: Sequence[str], *, every: float = 0.1) -> None:
        self.driver = driver
        self.symbols = list(symbols)
        self.every = every
        self.sent = 0
        self.answers: list[ProbeAnswer] = []
        # Sent and not answered yet: (symbol, send time).
        self.waiting: set[tuple[str, float]] = set()
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="order-prober")
        self.resources.push_async_callback(cancel_and_wait, self._task)

    async def stop(self) -> None:
        await super().stop()
        self._task = None

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            symbol = self.symbols[self.sent % len(self.symbols)]
            self.sent += 1
            sent = time.monotonic()
            self.waiting.add((symbol, sent))
            await self.driver.send(symbol, sent, hook=self._hook(symbol, sent))
            next_at += self.every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _hook(self, symbol: str, sent: float) -> Callable[[str, float], None]:
        def answered(kind: str, at: float) -> None:
            self.answers.append(ProbeAnswer(symbol, sent, at, kind))
            self.waiting.discard((symbol, sent))
            self._new.set()

        return answered

    async def wait_for(
        self,
        match: Callable[[ProbeAnswer], bool],
        timeout: float,
        *,
        check: Callable[[], None] | None = None,
    ) -> ProbeAnswer | None:
        """The first answer (already kept or yet to come) that ``match`` accepts, or None.

        ``check`` is called while waiting: it raises if what is probed has died.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for answer in self.answers[seen:]:
                if match(answer):
                    return answer
            seen = len(self.answers)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._task is not None and self._task.done():
                self._task.result()
            self.driver.check()
            if check is not None:
                check()
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(left, 0.5))

    def median_s(self, *, sent_after: float = 0.0) -> float:
        """The median latency of the answers so far to probes sent after ``sent_after``."""
        latencies = [a.latency_s for a in self.answers if a.sent >= sent_after]
        return statistics.median(latencies) if latencies else 0.0

    async def steady(self, *, sent_after: float, count: int, timeout: float) -> None:
        """Wait until ``count`` probes sent after ``sent_after`` were answered."""
        seen = 0

        def counts(answer: ProbeAnswer) -> bool:
            nonlocal seen
            seen += answer.sent >= sent_after
            return seen >= count

        await self.wait_for(counts, timeout)

    def held_s(self, since: float, until: float) -> float:
        """The longest any probe sent in [since, until] waited (still waiting: until now)."""
        now = time.monotonic()
        answered = [a.latency_s for a in self.answers if since <= a.sent <= until]
        waiting = [now - sent for _, sent in self.waiting if since <= sent <= until]
        return max([*answered, *waiting], default=0.0)
