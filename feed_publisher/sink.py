"""Sends pre-partitioned records to Kafka in whole batches and counts acknowledgements.

``AIOKafkaProducer.send()`` costs a future and an accumulator lookup per record; building one
``BatchBuilder`` per partition and handing it over with ``send_batch()`` costs one of each per
batch. The publisher already knows each record's partition (the shared murmur2 partitioner), so
it can use the cheaper path without changing where any record lands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]
# Acknowledgement callback: (topic, partition, base offset, records) of one acked batch; the
# records are in offset order, so record i has offset base + i.
AckListener = Callable[[str, int, int, list[Record]], None]


class BatchSink:
    def __init__(self, producer: AIOKafkaProducer, *, max_unacked: int = 200_000) -> None:
        self._producer = producer
        self._max_unacked = max_unacked
        self._pending: deque[tuple[asyncio.Future[Any], int]] = deque()
        self._listeners: list[AckListener] = []
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self._last_error_log = 0.0

    def on_ack(self, listener: AckListener) -> None:
        self._listeners.append(listener)

    @property
    def unacked(self) -> int:
        return self.sent - self.acked - self.failed

    async def send(self, topic: str, by_partition: dict[int, list[Record]]) -> None:
        for partition, records in by_partition.items():
            await self._send_partition(topic, partition, records)
        # Back-pressure: a broker slower than the schedule must not grow memory without bound.
        while self.unacked > self._max_unacked and self._pending:
            future, _ = self._pending[0]
            await asyncio.wait([future])
            self._reap()

    async def _send_partition(self, topic: str, partition: int, records: Iterable[Record]) -> None:
        batch = self._producer.create_batch()
        in_batch: list[Record] = []
        for record in records:
            if batch.append(key=record[0], value=record[1], timestamp=None) is None:
                await self._submit(batch, topic, partition, in_batch)
                batch, in_batch = self._producer.create_batch(), []
                batch.append(key=record[0], value=record[1], timestamp=None)
            in_batch.append(record)
        if in_batch:
            await self._submit(batch, topic, partition, in_batch)

    async def _submit(self, batch: Any, topic: str, partition: int, records: list[Record]) -> None:
        future = await self._producer.send_batch(batch, topic, partition=partition)
        count = len(records)
        self.sent += count
        future.add_done_callback(lambda f: self._done(f, topic, partition, records))
        self._pending.append((future, count))
        if len(self._pending) > 1024:
            self._reap()

    def _done(
        self, future: asyncio.Future[Any], topic: str, partition: int, records: list[Record]
    ) -> None:
        count = len(records)
        if future.cancelled():
            self.failed += count
            return
        exc = future.exception()
        if exc is not None:
            self.failed += count
            now = time.monotonic()
            if now - self._last_error_log > 5.0:
                self._last_error_log = now
                log.error(
                    "delivery to %s[%d] failed: %r (%d failed so far)",
                    topic,
                    partition,
                    exc,
                    self.failed,
                )
            return
        self.acked += count
        offset = future.result().offset
        for listener in self._listeners:
            listener(topic, partition, offset, records)

    def _reap(self) -> None:
        while self._pending and self._pending[0][0].done():
            self._pending.popleft()

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait for every batch sent so far to be acknowledged or failed."""
        futures = [f for f, _ in self._pending if not f.done()]
        if futures:
            _done, not_done = await asyncio.wait(futures, timeout=timeout)
            if not_done:
                log.error("%d batches still unacknowledged after %.0fs", len(not_done), timeout)
        self._reap()
