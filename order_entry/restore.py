"""Gives the order ledger back what its Redis lost, from ``orders.events``, partition by partition.

The ledger (``order_entry.ledger``) is what makes a duplicate command harmless: without it, a
command answered before would be answered again. Its Redis can come back empty (restarted
without its append-only file, or a new one); each command partition's ledger is then restored
from the partition's events, the source of truth, before any of its commands is answered:
when the partition is assigned, and whenever a claim finds it incomplete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from order_entry.eventlog import EventLog
from order_entry.ledger import Claim, OrderLedger

log = logging.getLogger("order_entry.orders")


class LedgerRestorer:
    def __init__(
        self,
        ledger: OrderLedger,
        *,
        memory_s: float,
        retrying: Callable[[Callable[[], Awaitable[object]]], Awaitable[object]],
    ) -> None:
        """``memory_s``: how far back orders are remembered (older ones are not restored);
        ``retrying``: runs an attempt until its servers are back (the processor's hold)."""
        self.ledger = ledger
        self.memory_s = memory_s
        self.retrying = retrying
        self.restored = 0  # orders recorded again, since start

    async def claim(
        self,
        order_id: str,
        events: list[bytes],
        *,
        partition: int,
        events_log: EventLog,
        owned: Iterable[int],
        settled: Callable[[], Awaitable[None]],
    ) -> Claim:
        """The ledger's claim (``OrderLedger.claim``), on a complete ledger: one found without
        its partition's history is restored first (every partition of ``owned`` it lacks),
        after ``settled()``: what was sent must be on the topic, and marked, before the topic
        is read."""
        while True:
            claim = await self.ledger.claim(
                order_id,
                events,
                partition=partition,
                scan_from=events_log.lower_bound(partition),
            )
            if claim.complete:
                return claim
            log.warning(
                "order ledger of partition %d is gone (its Redis came back empty?); restoring "
                "it from %s before answering",
                partition,
                events_log.topic,
            )
            await settled()
            await self.ensure({*owned, partition}, events_log)

    async def ensure(self, partitions: Iterable[int], events_log: EventLog) -> set[int]:
        """Restore the ledger of those of ``partitions`` it lacks, reading ``events_log``;
        which those were."""
        wanted = set(partitions)
        missing: set[int] = set()

        async def find() -> None:
            missing.update(await self.ledger.incomplete(wanted))

        await self.retrying(find)
        if not missing:
            return missing
        since_ms = time.time_ns() // 1_000_000 - int(self.memory_s * 1000)
        started = time.monotonic()
        count = 0

        async def restore() -> None:
            nonlocal count
            count = 0  # an attempt cut short is made again from the start
            history = await events_log.history(missing, since_ms=since_ms)
            for partition, answered in sorted(history.items()):
                count += await self.ledger.restore(partition, answered)

        await self.retrying(restore)
        self.restored += count
        log.info(
            "order ledger of partitions %s: %d answered orders restored from %s in %.1fs",
            sorted(missing),
            count,
            events_log.topic,
            time.monotonic() - started,
        )
        return missing
