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

The ledger must outlive its Redis (``marketfeed up`` keeps an append-only file). When it does
not, it must at least know: ``P orders:ledger`` is a hash with one field per command partition
whose ledger is complete, written once the partition's history is in. Every claim reads its
partition's field in the same transaction; a ledger found without it (a Redis that came back
empty, a new one) is restored from ``orders.events``, the source of truth, before any command
of that partition is answered (``restore``: each order answered there is recorded as sent).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgpack
import redis.asyncio as aioredis

from order_entry.eventlog import Answered

# Orders written per round trip when a partition's ledger is restored.
_RESTORE_BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Claim:
    events: list[bytes]  # what to emit for this order id: the first decision's events
    already_sent: bool  # the events were acknowledged before: a duplicate, emit nothing
    first: bool  # this call recorded the decision
    scan_from: int  # events of this decision are at or after this offset (-1: unknown)
    complete: bool = True  # False: the ledger of this partition is not restored; do not act


class OrderLedger:
    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)

    def key(self, order_id: str) -> str:
        return f"{self.prefix}ord:{order_id}"

    @property
    def complete_key(self) -> str:
        return f"{self.prefix}orders:ledger"

    async def claim(
        self, order_id: str, events: list[bytes], *, partition: int, scan_from: int = -1
    ) -> Claim:
        """Record ``events`` as the decision on ``order_id`` unless one is recorded already.

        If ``partition``'s ledger is not complete, the claim is undone (a decision this call
        recorded is removed again) and says so: restore the partition, then claim again.
        """
        key = self.key(order_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(key, "from", scan_from)
        pipe.hsetnx(key, "events", msgpack.packb(events, use_bin_type=True))
        pipe.hgetall(key)
        pipe.pexpire(key, self.ttl_ms)
        pipe.hexists(self.complete_key, str(partition))
        _, created, stored, _, complete = await pipe.execute()
        if not complete:
            if created:
                await self.client.delete(key)
            return Claim(events=[], already_sent=False, first=False, scan_from=-1, complete=False)
        recorded: list[bytes] = msgpack.unpackb(stored[b"events"], raw=False)
        return Claim(
            events=recorded,
            already_sent=b"sent" in stored,
            first=bool(created),
            scan_from=int(stored.get(b"from", -1)),
        )

    async def incomplete(self, partitions: Iterable[int]) -> set[int]:
        """Those of ``partitions`` whose ledger is not complete (to restore)."""
        wanted = sorted(partitions)
        if not wanted:
            return set()
        present = await self.client.hmget(self.complete_key, [str(p) for p in wanted])
        return {p for p, mark in zip(wanted, present, strict=True) if mark is None}

    async def restore(self, partition: int, answered: Mapping[str, Answered]) -> int:
        """Record the orders answered on ``partition`` (read from orders.events) as decided
        and sent, then mark the partition complete; how many were recorded.

        An order whose events there lack a terminal one (a crash between the two sends) is
        left out: its command, not yet acked, comes again and is decided afresh.
        """
        now_ms = time.time_ns() // 1_000_000
        recorded = 0
        pipe = self.client.pipeline(transaction=False)
        for order_id, order in answered.items():
            ttl_ms = self.ttl_ms - (now_ms - order.ts_ms)
            if not order.terminal or ttl_ms <= 0:
                continue
            key = self.key(order_id)
            # Whatever a decision in flight wrote there gives way to what was sent.
            pipe.hset(
                key,
                mapping={
                    "events": msgpack.packb(order.events, use_bin_type=True),
                    "from": -1,
                    "sent": "1",
                },
            )
            pipe.pexpire(key, ttl_ms)
            recorded += 1
            if len(pipe) >= _RESTORE_BATCH:
                await pipe.execute()
        pipe.hset(self.complete_key, str(partition), time.time_ns())
        await pipe.execute()
        return recorded

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
