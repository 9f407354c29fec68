"""How marketfeed runs faust: one App configuration, and an agent loop that acks after the work.

Both stream processors (order_entry's order processor, portfolio's position keeper) run a faust
App inside their own asyncio lifecycle and share these choices:

- Group timeouts from the service's settings (``common.groups``): on the embedded broker a join
  waits about half the session timeout, and a killed member's partitions move on after it.
- ``at_least_once``, never ``exactly_once`` (the embedded broker's transactions are unreliable);
  each processor is idempotent by order id instead.
- Acks after the work, not before: faust acks an event when the agent's ``async for`` moves on
  *or is left*, so an agent cancelled mid-event (a stop while Redis is away) would mark that
  event done and its offset could be committed unprocessed. ``processed()`` turns faust's acks
  off for the stream and acks each event only once its handler returned. ``stream_wait_empty``
  is off for the same reason: a stop commits what was processed and leaves the event in hand to
  be delivered again, rather than waiting for a handler that cannot finish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust

from common.groups import GroupSettings


def faust_broker(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(","))


def make_app(app_id: str, *, settings: GroupSettings, datadir: str) -> faust.App:
    session = settings.session_timeout
    return faust.App(
        app_id,
        broker=faust_broker(settings.bootstrap),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=datadir,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=session,
        broker_heartbeat_interval=session / 6,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_acks=-1,
        topic_partitions=1,
    )


# (key, value, partition, offset) of one record
Handler = Callable[[bytes | None, bytes | None, int, int], Awaitable[None]]


async def processed(stream: Any, handle: Handler) -> AsyncIterator[None]:
    """The body of an agent: ``handle`` each event, ack it only after ``handle`` returned."""
    stream.enable_acks = False
    async for event in stream.events():
        message = event.message
        await handle(event.key, event.value, message.partition, message.offset)
        event.ack()
        yield None
