"""The order flow's outcomes during a soak, read from ``orders.events`` (terminal events only).

A soak must say whether order_entry rejected orders ``STALE_QUOTE`` because the feed fell
behind. It does not parse order_entry's log lines: it reads the events order_entry emits, every
partition from the beginning, and counts each terminal event by kind and each rejection by its
reason. What cannot be decoded is counted as such.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.errors import SchemaError
from common.kafka import KafkaSettings
from common.lifecycle import Lifecycle, cancel_and_wait
from common.schema import decode
from common.schema.orders import TERMINAL_EVENTS, OrderRejected
from marketfeed.bench.core.clients import open_consumer

UNDECODABLE = "undecodable"


def count_event(counts: Counter[str], value: bytes | None) -> None:
    """Count one record of orders.events: its kind if terminal, and a rejection's reason."""
    try:
        event = decode(value or b"")
    except SchemaError:
        counts[UNDECODABLE] += 1
        return
    if not isinstance(event, TERMINAL_EVENTS):
        return
    counts[str(event.TYPE)] += 1
    if isinstance(event, OrderRejected):
        counts[f"{event.TYPE}:{event.reason}"] += 1


class OrderOutcomes(Lifecycle):
    """Counts the terminal events on ``orders.events`` as they come; ``counts`` is live."""

    def __init__(self, kafka: KafkaSettings, *, fetch_max_wait_ms: int = 100) -> None:
        self.kafka = kafka
        self.counts: Counter[str] = Counter()
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        consumer = await open_consumer(
            self.resources,
            bootstrap=self.kafka.bootstrap,
            client_id="soak-orders",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            connect_timeout=self.kafka.connect_timeout,
        )
        topic = self.kafka.topics.orders_events
        tps = [TopicPartition(topic, p) for p in range(self.kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(consumer), name="soak-orders")
        self.resources.push_async_callback(cancel_and_wait, self._task)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    count_event(self.counts, record.value)

    def check(self) -> None:
        """Raise what ended the reader, if it ended."""
        task = self._task
        if task is not None and task.done():
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
            raise RuntimeError("the orders.events reader ended")
