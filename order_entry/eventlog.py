"""What order_entry has already written to ``orders.events``: settles a recovered decision.

The order ledger records a decision before its events are sent and marks it sent after the
broker's ack. A process killed between the two leaves a decision "recorded, not sent" whose
events may or may not be on the topic. This module answers that question by reading the
command's partition of ``orders.events`` from a lower bound of where the events can be (kept
per partition: the end at assignment, then every acknowledged offset), so that they are sent
again only if they are missing. It is on the recovery path only; normal processing never reads.

Events are written to the partition of their command (orders are co-partitioned with events),
so the process that owns a command partition is the only writer of its events partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.errors import BrokerUnavailableError, SchemaError
from common.kafka import KafkaSettings, close_consumer, with_backoff
from common.lifecycle import Lifecycle
from common.schema import decode
from common.schema.orders import OrderEvent

log = logging.getLogger("order_entry.orders")

_SCAN_TIMEOUT_S = 10.0


class EventLog(Lifecycle):
    def __init__(self, settings: KafkaSettings, *, client_id: str) -> None:
        self.settings = settings
        self.topic = settings.topics.orders_events
        self.client_id = client_id
        self._ends: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._scanning = asyncio.Lock()

    async def _start(self) -> None:
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=self.client_id,
        )
        # Registered before it starts: one that fails to start must be closed all the same.
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "events reader",
            consumer.start,
            bootstrap=self.settings.bootstrap,
            timeout=self.settings.connect_timeout,
        )
        self._consumer = consumer

    async def stop(self) -> None:
        self._consumer = None
        await super().stop()

    async def assigned(self, partitions: Iterable[int]) -> None:
        """Note the ends of newly owned partitions: nothing we write later lands before them."""
        new = [TopicPartition(self.topic, p) for p in partitions if p not in self._ends]
        if not new:
            return
        # A lower bound is all that is needed (the embedded broker's ListOffsets answers the
        # start of the last batch + 1, not the high watermark; both are safe places to start).
        ends = await self._ready().end_offsets(new)
        for tp, offset in ends.items():
            self._ends[tp.partition] = offset

    def revoked(self, partitions: Iterable[int]) -> None:
        # Another process may write there now: our bound would be out of date if it came back.
        for partition in partitions:
            self._ends.pop(partition, None)

    def lower_bound(self, partition: int) -> int:
        return self._ends.get(partition, -1)

    def note_sent(self, partition: int, offset: int) -> None:
        self._ends[partition] = max(self._ends.get(partition, 0), offset + 1)

    async def present(self, partition: int, start: int, order_id: str) -> set[bytes]:
        """The events of ``order_id`` on ``partition`` at or after ``start`` (0 if unknown).

        Raises BrokerUnavailableError (retriable) if the partition cannot be read to its end
        in time: guessing "absent" would send a second answer.
        """
        # One reader, one scan at a time: the agent and the window both settle decisions.
        async with self._scanning:
            consumer = self._ready()
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            try:
                return await self._scan(consumer, tp, max(start, 0), order_id)
            finally:
                consumer.unsubscribe()  # no background fetching of a partition we do not scan

    async def _scan(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, order_id: str
    ) -> set[bytes]:
        consumer.seek(tp, start)
        found: set[bytes] = set()
        deadline = time.monotonic() + _SCAN_TIMEOUT_S
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            for record in batch.get(tp, []):
                try:
                    event = decode(record.value)
                except SchemaError:
                    continue
                if isinstance(event, OrderEvent) and event.order_id == order_id:
                    found.add(record.value)
            high = consumer.highwater(tp)
            if high is not None and await consumer.position(tp) >= high:
                return found
            await asyncio.sleep(0)
        raise BrokerUnavailableError(
            f"could not read {self.topic}[{tp.partition}] to its end in {_SCAN_TIMEOUT_S:g}s",
            retriable=True,
        )

    def _ready(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "event log not started"
        return self._consumer
