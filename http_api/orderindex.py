"""The orders of the event log, by order id: the API's read model of ``orders.events``.

It follows every partition of ``orders.events`` from the beginning and keeps the events of the
last ``kept`` orders in memory, newest last. ``GET /v1/orders/{id}`` reads it, and ``POST
/v1/orders`` waits on it for its order's outcome: the waiter is registered before the command
is sent, so the answer cannot be missed. Until it has read up to the end of the log it was
given at start (``caught_up``), an order it does not know may still be in the part not read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.errors import SchemaError
from common.kafka import KafkaSettings, close_consumer
from common.kafkasec import connection
from common.lifecycle import Lifecycle, cancel_and_wait
from common.schema import decode
from common.schema.orders import TERMINAL_EVENTS, OrderEvent

log = logging.getLogger("http_api.orders")


class OrderIndex(Lifecycle):
    def __init__(self, settings: KafkaSettings, *, kept: int) -> None:
        self.settings = settings
        self.topic = settings.topics.orders_events
        self.kept = kept
        self.caught_up = asyncio.Event()
        self._orders: OrderedDict[str, list[OrderEvent]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[list[OrderEvent]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.records = 0
        self.bad_records = 0

    async def _start(self) -> None:
        """Assign every partition from its start; the caller made sure the broker answers."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            client_id="marketfeed-api-orders",
            **connection(self.settings),
        )
        self.resources.push_async_callback(close_consumer, consumer)
        await consumer.start()
        parts = [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._follow(consumer, parts), name="api-order-index")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        await super().stop()

    def events(self, order_id: str) -> list[OrderEvent] | None:
        found = self._orders.get(order_id)
        return None if found is None else list(found)

    def recent(
        self, count: int, accounts: Iterable[str] = ()
    ) -> list[tuple[str, list[OrderEvent]]]:
        """The newest ``count`` orders (of ``accounts``, if given), newest first."""
        wanted = set(accounts)
        out = []
        for order_id in reversed(self._orders):
            events = self._orders[order_id]
            if wanted and not wanted & {getattr(e, "account", None) for e in events}:
                continue
            out.append((order_id, list(events)))
            if len(out) >= count:
                break
        return out

    def waiter(self, order_id: str) -> asyncio.Future[list[OrderEvent]]:
        """A future set to the order's events once its outcome is read (already, if it was)."""
        future: asyncio.Future[list[OrderEvent]] = asyncio.get_running_loop().create_future()
        events = self._orders.get(order_id)
        if events is not None and any(isinstance(e, TERMINAL_EVENTS) for e in events):
            future.set_result(list(events))
        else:
            self._waiters.setdefault(order_id, []).append(future)
        return future

    def forget(self, order_id: str, future: asyncio.Future[list[OrderEvent]]) -> None:
        futures = self._waiters.get(order_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[order_id]

    async def _follow(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    self._add(record.value)
            if not self.caught_up.is_set() and await _at_end(consumer, parts):
                log.info("order index caught up: %d orders from %s", len(self._orders), self.topic)
                self.caught_up.set()

    def _add(self, value: bytes | None) -> None:
        self.records += 1
        try:
            event = decode(value or b"")
        except SchemaError:
            self.bad_records += 1  # order_entry writes this topic; not ours to dead-letter
            return
        if not isinstance(event, OrderEvent):
            self.bad_records += 1
            return
        events = self._orders.get(event.order_id)
        if events is None:
            events = self._orders[event.order_id] = []
            if len(self._orders) > self.kept:
                self._orders.popitem(last=False)
        events.append(event)
        if isinstance(event, TERMINAL_EVENTS):
            for future in self._waiters.pop(event.order_id, []):
                if not future.done():
                    future.set_result(list(events))


async def _at_end(consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> bool:
    """Read up to the high watermark each partition's last fetch reported."""
    for tp in parts:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True
