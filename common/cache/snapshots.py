"""Asks the publisher for snapshots: request on one topic, reply on this service's reply topic.

A background task reads the reply topic and hands each reply part to the request waiting for
it (correlation by request id), so several requests can be outstanding at once. The reply
consumer is positioned at the end of the reply topic before the first request is sent, so no
reply can be missed. ``GapRequests`` asks in the background for symbols whose sequence numbers
jumped, without holding up the consumer that found the gaps. Replies are signed by the
publisher (``common.feedsign``): one that is not is dead-lettered and never used.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from common.cache.batch import Rejected
from common.cache.deadletters import DeadLetterSink
from common.errors import SchemaError
from common.feedsign import FeedTrust
from common.generations.position import Position
from common.kafka import KafkaSettings, TopicSpec, close_consumer, ensure_topics, with_backoff
from common.kafkasec import connection
from common.lifecycle import Lifecycle, cancel_and_wait
from common.schema import Quote, SnapshotReply, SnapshotRequest, decode_as, decode_quote

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Snapshot:
    epoch: int
    quotes: list[tuple[Quote, bytes]]
    # Partition -> next position: everything before it is reflected in ``quotes``.
    positions: dict[int, Position]
    missing: list[str]


@dataclass(slots=True)
class _Collector:
    future: asyncio.Future[Snapshot]
    parts: dict[int, SnapshotReply] = field(default_factory=dict)


class SnapshotClient(Lifecycle):
    def __init__(
        self,
        settings: KafkaSettings,
        producer: AIOKafkaProducer,
        *,
        service: str,
        trust: FeedTrust,
        dead: DeadLetterSink | None = None,
    ) -> None:
        """``trust``: a reply must be signed for the reply topic, and its quotes' times
        plausible; a reply that is not signed goes to ``dead`` (or only the log) and is never
        used."""
        self.settings = settings
        self.service = service
        self.trust = trust
        self._dead = dead
        self.refused = 0  # replies that were not signed by the feed's key
        self.reply_topic = settings.topics.snapshot_replies(service)
        self._producer = producer
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[str, _Collector] = {}

    async def _start(self) -> None:
        if self._task is not None:
            return
        s = self.settings
        await ensure_topics(
            s, [TopicSpec(self.reply_topic, 1), TopicSpec(s.topics.snapshot_requests, 1)]
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            enable_auto_commit=False,
            client_id=f"{self.service}-snapshots",
            fetch_max_wait_ms=20,
            **connection(s),
        )
        # Registered before it starts: one that fails to start must be closed all the same.
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "snapshot replies",
            consumer.start,
            bootstrap=s.bootstrap,
            timeout=s.connect_timeout,
            security=s,
        )
        tp = TopicPartition(self.reply_topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        # seek_to_end is lazy; resolve the position now, before any request goes out.
        await consumer.position(tp)
        self._task = asyncio.create_task(self._read(consumer), name=f"{self.service}-snapshots")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for collector in self._waiting.values():
            collector.future.cancel()
        self._waiting.clear()
        await super().stop()

    async def request(self, symbols: Iterable[str], timeout: float) -> Snapshot | None:
        """The snapshot of ``symbols``, or None if no complete answer came within ``timeout``."""
        request = SnapshotRequest(
            request_id=uuid.uuid4().hex, reply_to=self.reply_topic, symbols=tuple(symbols)
        )
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = _Collector(future)
        try:
            await self._producer.send_and_wait(
                self.settings.topics.snapshot_requests,
                request.encode(),
                key=request.request_id.encode(),
            )
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the answer does, and a service asked to stop would run on.
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request.request_id, None)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    reason = self.trust.signature_reason(self.reply_topic, record)
                    if reason is None:
                        self._dispatch(record.value)
                    else:
                        await self._refuse(record, f"snapshot reply refused: {reason}")

    async def _refuse(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        self.refused += 1
        if self._dead is None:
            log.warning("%s: %s", self.reply_topic, reason)
            return
        rejected = Rejected(record.partition, record.offset, record.key, record.value, reason)
        await self._dead.store_rejected(self.reply_topic, [rejected])

    def _dispatch(self, value: bytes | None) -> None:
        try:
            reply = decode_as(value or b"", SnapshotReply)
        except SchemaError as exc:
            log.warning("ignoring a bad snapshot reply: %s", exc)
            return
        collector = self._waiting.get(reply.request_id)
        if collector is None or collector.future.done():
            return  # someone else's reply, or one that came after its request timed out
        collector.parts[reply.part] = reply
        if len(collector.parts) == reply.parts:
            collector.future.set_result(_assemble(collector.parts, self.trust))


class GapRequests:
    """Symbols whose sequence numbers jumped, re-read from a snapshot in the background.

    At most one request is in flight and a new one starts at most every ``every`` seconds: a
    burst of gaps costs one snapshot, not one per batch, and the consumer never waits for it.
    """

    def __init__(self, client: SnapshotClient, *, timeout: float, every: float = 1.0) -> None:
        self._client = client
        self._timeout = timeout
        self._every = every
        self._symbols: set[str] = set()
        self._task: asyncio.Task[Snapshot | None] | None = None
        self._last_request = 0.0

    def note(self, symbols: Iterable[str]) -> None:
        self._symbols.update(symbols)

    def take(self) -> Snapshot | None:
        """The answer to the last request if it has come; starts the next request if due."""
        task, answer = self._task, None
        if task is not None and task.done():
            self._task = None
            answer = None if task.cancelled() else task.result()
        now = time.monotonic()
        if self._symbols and self._task is None and now - self._last_request > self._every:
            symbols, self._symbols = sorted(self._symbols), set()
            self._last_request = now
            self._task = asyncio.create_task(self._client.request(symbols, self._timeout))
        return answer

    async def close(self) -> None:
        """Drop the request in flight, if any. Safe to call twice."""
        task, self._task = self._task, None
        await cancel_and_wait(task)


def _assemble(parts: dict[int, SnapshotReply], trust: FeedTrust) -> Snapshot:
    first = parts[0]
    quotes: list[tuple[Quote, bytes]] = []
    now_ns = time.time_ns()
    for index in sorted(parts):
        for raw in parts[index].quotes:
            try:
                quote = decode_quote(raw)
            except SchemaError as exc:
                log.warning("snapshot %s carried a bad quote: %s", first.request_id, exc)
                continue
            # Signed, so from the publisher: a quote with implausible times is its bug, or a
            # stolen key's (no seq check: the snapshot is the authority on sequence numbers).
            reason = trust.plausibility.clock_reason(quote, now_ns)
            if reason is not None:
                log.warning("snapshot %s: %s dropped: %s", first.request_id, quote.symbol, reason)
                continue
            quotes.append((quote, raw))
    generations = dict(first.generations)
    return Snapshot(
        epoch=first.epoch,
        quotes=quotes,
        positions={p: Position(generations.get(p, 0), o) for p, o in first.offsets},
        missing=list(first.missing),
    )
