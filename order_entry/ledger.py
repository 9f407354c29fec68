"""The order ledger in order_entry's Redis: which order ids were decided, and what was answered.

Why it exists: the order flow is at-least-once (faust commits offsets after processing, and
exactly-once is off on the embedded broker), so a command can come again after a restart, and a
client can send the same command twice. Each order id gets one hash ``P ord:ORDER_ID``:

- ``events``: the encoded events decided the first time (a msgpack array of bin), written with
  HSETNX *before* anything is emitted, so a second decision never replaces the first;
- ``sent``: set once the broker acknowledged those events;
- ``from``: an offset of ``orders.events`` (on the command's partition) at or before which the
  events will land, written with the decision.

On a command whose id is recorded and sent, nothing is emitted (a recognised duplicate). Recorded
but not sent (a crash between the broker's ack and the ``sent`` mark, or before the send) is
settled by reading ``orders.events`` from ``from``: events already there are not sent again,
missing ones are sent, the very same bytes. So no command is left without its terminal event,
none is executed twice, and none is answered twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Claim:
    events: list[bytes]  # what to emit for this order id: the first decision's events
    already_sent: bool  # the events were acknowledged before: a duplicate, emit nothing
    first: bool  # this call recorded the decision
    scan_from: int  # events of this decision are at or after this offset (-1: unknown)


class OrderLedger:
    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)

    def key(self, order_id: str) -> str:
        return f"{self.prefix}ord:{order_id}"

    async def claim(self, order_id: str, events: list[bytes], *, scan_from: int = -1) -> Claim:
        key = self.key(order_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(key, "from", scan_from)
        pipe.hsetnx(key, "events", msgpack.packb(events, use_bin_type=True))
        pipe.hgetall(key)
        pipe.pexpire(key, self.ttl_ms)
        _, created, stored, _ = await pipe.execute()
        recorded: list[bytes] = msgpack.unpackb(stored[b"events"], raw=False)
        return Claim(
            events=recorded,
            already_sent=b"sent" in stored,
            first=bool(created),
            scan_from=int(stored.get(b"from", -1)),
        )

    async def mark_sent(self, order_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(order_id), "sent", "1")
        # Had the entry expired meanwhile, a bare HSET would leave a "sent" mark for ever.
        pipe.pexpire(self.key(order_id), self.ttl_ms)
        await pipe.execute()

    async def recorded(self, order_id: str) -> list[bytes] | None:
        value = await self.client.hget(self.key(order_id), "events")
        if value is None:
            return None
        data = value if isinstance(value, bytes) else value.encode()
        events: list[bytes] = msgpack.unpackb(data, raw=False)
        return events
