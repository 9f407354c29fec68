"""Commands answered but not yet acknowledged: the window that lets order_entry pipeline.

Waiting for the broker's acknowledgement of one order's events before reading the next command
capped order_entry at about 60 orders/s on the embedded broker (one acks=all round trip each)
while it used a tenth of a core. Instead the agent decides, records and sends, then puts the
command here; one settling task takes the commands in arrival order, awaits their events'
acknowledgements, marks their ledger entries sent and only then acks them to faust. So offsets
are committed in order and only for answered commands, and a crash or a stop with commands in
the window leaves them uncommitted: they are delivered again and the ledger settles them.

The window is bounded (``--orders-window``): a slow broker holds the agent back instead of
letting unacknowledged sends pile up. An order id that is still in the window when the same
command comes again is waited for, so the copy finds the first one marked sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from common.lifecycle import Lifecycle, cancel_all
from order_entry.stats import Decided


@dataclass(slots=True)
class Pending:
    """One command between its answer being sent and its offset being acked to faust."""

    ack: Callable[[], object]  # acks the command's faust event
    partition: int
    order_id: str | None = None  # None: nothing was sent (a duplicate, a dead letter)
    key: bytes | None = None
    events: list[bytes] = field(default_factory=list)  # the encoded events sent
    futures: list[asyncio.Future[Any]] = field(default_factory=list)  # their delivery
    terminal: Decided | None = None  # how it was answered, if decided here
    scan_from: int = -1  # the ledger's lower bound of where the events land
    settled: asyncio.Event = field(default_factory=asyncio.Event)


Settle = Callable[[Pending], Awaitable[None]]


class Window(Lifecycle):
    def __init__(self, *, size: int, settle: Settle) -> None:
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=size)
        self._settle = settle
        self._by_id: dict[str, Pending] = {}
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="order-window")

    async def stop(self) -> None:
        """Stop settling; what is still in the window stays unacked (it will come again)."""
        task, self._task = self._task, None
        if task is not None:
            # A failure was reported through on_failure(); here only the stop matters.
            await cancel_all([task])
        for pending in self._by_id.values():
            pending.settled.set()  # nobody may wait for a window that is gone
        self._by_id.clear()

    def __len__(self) -> int:
        return self._queue.qsize()

    async def put(self, pending: Pending) -> None:
        if pending.order_id is not None:
            self._by_id[pending.order_id] = pending
        await self._queue.put(pending)

    async def wait_for(self, order_id: str) -> None:
        """Until ``order_id`` has left the window (at once if it is not in it)."""
        pending = self._by_id.get(order_id)
        if pending is not None:
            await pending.settled.wait()

    async def drained(self) -> None:
        """Until every command put so far has been settled and acked."""
        await self._queue.join()

    def on_failure(self, callback: Callable[[BaseException], object]) -> None:
        """Call ``callback`` if settling fails: the window stops, nothing more is acked."""
        task = self._task
        assert task is not None, "window not started"

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                callback(t.exception() or RuntimeError("window failed"))

        task.add_done_callback(done)

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            await self._settle(pending)
            pending.ack()
            if pending.order_id is not None and self._by_id.get(pending.order_id) is pending:
                del self._by_id[pending.order_id]
            pending.settled.set()
            self._queue.task_done()
