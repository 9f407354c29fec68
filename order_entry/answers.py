"""Puts order_entry's answers on ``orders.events``: each decision there exactly once.

A first decision is sent at once (``send``) and settled by the window once its sends have
ended (``settle``): a send that failed is checked against ``orders.events`` like a decision
recorded before a crash (``recover``: only the events missing there are sent), and only then is
the ledger entry marked sent. Events go to the command's own partition: orders and events
are co-partitioned, and only the process that owns a command partition writes its events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaProducer

from order_entry.eventlog import EventLog
from order_entry.inflight import Pending
from order_entry.ledger import OrderLedger

log = logging.getLogger("order_entry.orders")

T = TypeVar("T")


class Retrying(Protocol):
    """Runs an attempt until the servers it needs are back (the processor's hold)."""

    def __call__(self, attempt: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


class Answers:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        topic: str,
        events_log: EventLog,
        ledger: OrderLedger,
        retrying: Retrying,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._events_log = events_log
        self._ledger = ledger
        self._retrying = retrying

    async def send(
        self, key: bytes | None, partition: int, events: list[bytes]
    ) -> list[asyncio.Future[Any]]:
        """Queue ``events`` on the command's own partition; their deliveries, to await."""
        futures: list[asyncio.Future[Any]] = []
        try:
            for value in events:
                futures.append(
                    await self._producer.send(self._topic, value, key=key, partition=partition)
                )
        except BaseException:
            # Those already queued may still land: let them, before the caller looks again.
            if futures:
                await asyncio.wait(futures)
            raise
        return futures

    async def recover(
        self, order_id: str, partition: int, key: bytes | None, events: list[bytes], start: int
    ) -> int:
        """Settle a decision recorded before a crash (maybe sent): send what orders.events
        lacks, then mark it sent in the ledger; return how many events were sent."""
        sent = await self.send_missing(order_id, partition, key, events, start)
        log.info(
            "order %s: recovered a decision recorded before a restart; %d of %d events sent",
            order_id,
            sent,
            len(events),
        )
        await self._ledger.mark_sent(order_id)
        return sent

    async def send_missing(
        self, order_id: str, partition: int, key: bytes | None, events: list[bytes], start: int
    ) -> int:
        """Send those of ``events`` that orders.events lacks (from ``start``) and wait for
        them; return how many were sent."""
        present = await self._events_log.present(partition, start, order_id)
        missing = [e for e in events if e not in present]
        for metadata in await asyncio.gather(*await self.send(key, partition, missing)):
            self._events_log.note_sent(partition, metadata.offset)
        return len(missing)

    async def settle(self, pending: Pending) -> None:
        """The window's step for a first decision: its events are stored, the ledger says so."""
        order_id = pending.order_id
        assert order_id is not None, "nothing was sent for this command"
        # Every send finished, failed or not, before orders.events is looked at.
        await asyncio.wait(pending.futures)
        failed = [f.exception() for f in pending.futures if f.exception() is not None]
        for future in pending.futures:
            if future.exception() is None:
                self._events_log.note_sent(pending.partition, future.result().offset)
        if failed:
            # Delivery unknown: settle it like a decision recovered after a crash.
            log.warning("order %s: sending its events failed (%r); checking", order_id, failed[0])
            await self._retrying(
                lambda: self.send_missing(
                    order_id, pending.partition, pending.key, pending.events, pending.scan_from
                )
            )
        await self._retrying(lambda: self._ledger.mark_sent(order_id))
