"""What order_entry has already written to ``orders.events``: settles a recovered decision.

The order ledger records a decision before its events are sent and marks it sent after the
broker's ack. A process killed between the two leaves a decision "recorded, not sent" whose
events may or may not be on the topic. This module answers that question by reading the
command's partition of ``orders.events`` from a lower bound of where the events can be (kept
per partition: the end at assignment, then every acknowledged offset), so that they are sent
again only if they are missing. It is on the recovery path only; normal processing never reads.

Events are written to the partition of their command (orders are co-partitioned with events),
so the process that owns a command partition is the only writer of its events partition.

It also gives the ledger back what it lost (``history``): the answered orders of a partition,
read from its beginning, when the ledger's Redis came back empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.errors import BrokerUnavailableError, SchemaError
from common.kafka import KafkaSettings, close_consumer, with_backoff
from common.kafkasec import connection
from common.lifecycle import Lifecycle
from common.schema import decode
from common.schema.orders import TERMINAL_EVENTS, OrderEvent

log = logging.getLogger("order_entry.orders")

_SCAN_TIMEOUT_S = 10.0
_HISTORY_TIMEOUT_S = 60.0
_FETCH_WAIT_MS = 20


@dataclass(slots=True)
class Answered:
    """What ``orders.events`` holds of one order: its events, and whether one is terminal."""

    ts_ms: int  # Kafka timestamp of its first event
    events: list[bytes] = field(default_factory=list)
    terminal: bool = False


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
            # A scan ends at the partition's end, where a fetch would wait this long for more.
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            **connection(self.settings),
        )
        # Registered before it starts: one that fails to start must be closed all the same.
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "events reader",
            consumer.start,
            bootstrap=self.settings.bootstrap,
            security=self.settings,
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
        found: set[bytes] = set()

        def keep(_partition: int, event: OrderEvent, value: bytes, _ts_ms: int) -> None:
            if event.order_id == order_id:
                found.add(value)

        await self._scan({partition: max(start, 0)}, keep, _SCAN_TIMEOUT_S)
        return found

    async def history(
        self, partitions: Iterable[int], *, since_ms: int
    ) -> dict[int, dict[str, Answered]]:
        """Every order answered on each of ``partitions`` since ``since_ms`` (Kafka timestamp):
        its events in the order they were written, copies left out. Errors as present().
        """
        orders: dict[int, dict[str, Answered]] = {p: {} for p in partitions}

        def keep(partition: int, event: OrderEvent, value: bytes, ts_ms: int) -> None:
            if ts_ms < since_ms:
                return
            answered = orders[partition].setdefault(event.order_id, Answered(ts_ms=ts_ms))
            if value not in answered.events:
                answered.events.append(value)
                answered.terminal = answered.terminal or isinstance(event, TERMINAL_EVENTS)

        await self._scan(dict.fromkeys(orders, 0), keep, _HISTORY_TIMEOUT_S)
        return orders

    async def _scan(
        self,
        starts: dict[int, int],
        keep: Callable[[int, OrderEvent, bytes, int], None],
        timeout: float,
    ) -> None:
        """Hand every order event of each partition, from its start to its end, to ``keep``."""
        # One reader, one scan at a time: the agent and the window both settle decisions.
        async with self._scanning:
            consumer = self._ready()
            tps = {p: TopicPartition(self.topic, p) for p in starts}
            # Only a partition that holds nothing ends at 0 (a lower bound of its end on the
            # embedded broker): nothing to read there, not even a fetch to wait for.
            ends = await consumer.end_offsets(list(tps.values()))
            pending = {p for p, tp in tps.items() if ends[tp] > 0}
            if not pending:
                return  # (an empty assignment would crash aiokafka's fetcher for good)
            consumer.assign([tps[p] for p in pending])
            try:
                for p in pending:
                    consumer.seek(tps[p], starts[p])
                deadline = time.monotonic() + timeout
                while pending and time.monotonic() < deadline:
                    batch = await consumer.getmany(*(tps[p] for p in pending), timeout_ms=200)
                    for tp, records in batch.items():
                        for record in records:
                            try:
                                event = decode(record.value)
                            except SchemaError:
                                continue
                            if isinstance(event, OrderEvent):
                                keep(tp.partition, event, record.value, record.timestamp)
                    for p in list(pending):
                        high = consumer.highwater(tps[p])
                        if high is not None and await consumer.position(tps[p]) >= high:
                            pending.discard(p)
                    await asyncio.sleep(0)
            finally:
                consumer.unsubscribe()  # no background fetching of a partition we do not scan
        if pending:
            raise BrokerUnavailableError(
                f"could not read {self.topic}{sorted(pending)} to its end in {timeout:g}s",
                retriable=True,
            )

    def _ready(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "event log not started"
        return self._consumer
