"""The snapshot responder: answers "last values of these symbols, and the offsets they stand at".

It lives in the publisher because the publisher is the one place that knows, for every symbol,
the last quote the broker acknowledged, and for every partition the position right after the
last acknowledged record: (generation, offset), the next generation from offset 0 once the
partition's rollover marker is acknowledged. Both are updated together in the acknowledgement
callback (the sink acknowledges a partition's records in order, across generations too), and a
reply reads both without yielding to the event loop, so the values and the positions in one
reply always agree: a cache that writes the values and then consumes from the positions misses
nothing and applies nothing twice (it drops older sequence numbers anyway). The positions may
lag what the values reflect, never lead it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from common.errors import SchemaError
from common.feedsign import Signer
from common.generations.position import Position
from common.generations.rollover import read_marker
from common.kafka import KafkaSettings, close_consumer, with_backoff
from common.kafkasec import connection
from common.lifecycle import Lifecycle, cancel_and_wait
from common.schema import (
    MAX_QUOTES_PER_PART,
    ROLLOVER_KEY,
    SnapshotReply,
    SnapshotRequest,
    decode_as,
)
from common.watermarks import WatermarkReader
from feed_publisher.sink import Record

log = logging.getLogger(__name__)


class SnapshotResponder(Lifecycle):
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        epoch: int,
        generation: int,
        signer: Signer | None = None,
    ) -> None:
        """``generation``: the one the publisher starts writing (0: the plain topic, no
        generations). ``signer`` signs every reply for its reply topic (the signed feed)."""
        self.settings = settings
        self._signer = signer
        self.epoch = epoch
        self.generation = generation
        self._quotes_topic = settings.topics.quotes
        self.latest: dict[bytes, bytes] = {}
        self.position: dict[int, Position] = {}
        self.requests_served = 0
        self.requests_rejected = 0
        self._task: asyncio.Task[None] | None = None

    def on_ack(
        self, base: str, generation: int, partition: int, base_offset: int, records: list[Record]
    ) -> None:
        if base != self._quotes_topic:
            return
        here = self.position.get(partition)
        if here is not None and generation < here.generation:
            return  # a marker closing a generation older than this publisher's
        key, value = records[-1]
        if key == ROLLOVER_KEY:
            # Nothing is written after a marker: the partition goes on in the next generation.
            following, _ = read_marker(value, generation)
            self.latest.update(records[:-1])
            self.position[partition] = Position(following, 0)
            return
        self.latest.update(records)  # in offset order: the last record of a key wins
        self.position[partition] = Position(generation, base_offset + len(records))

    async def _start(self) -> None:
        if self._task is not None:
            return
        s = self.settings
        # Partitions this publisher has not written to yet stand at their current end: what is
        # before it belongs to an earlier publisher epoch, which this one has no values for. In
        # generations mode that is the start of the generation it opened.
        if self.generation > 0:
            for partition in range(s.partitions):
                self.position.setdefault(partition, Position(self.generation, 0))
        else:
            async with WatermarkReader(
                s.bootstrap, connect_timeout=s.connect_timeout, security=s
            ) as reader:
                marks = await reader.high_watermarks([self._quotes_topic])
            for tp, end in marks.items():
                self.position.setdefault(tp.partition, Position(0, end))
        # Each client is registered before it starts: one that fails to start, or a start that
        # fails after it, must close it all the same.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            enable_auto_commit=False,
            client_id="snapshot-responder",
            fetch_max_wait_ms=20,
            **connection(s),
        )
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "snapshots",
            consumer.start,
            bootstrap=s.bootstrap,
            timeout=s.connect_timeout,
            security=s,
        )
        # A producer of its own: replies go to topics created at run time, and the metadata
        # churn of a new topic must not touch the market-data producer (on Tansu 0.6.0 it
        # stalled that producer's partitions until its request timeout).
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            acks="all",
            linger_ms=0,
            client_id="snapshot-responder",
            max_request_size=4 * 1024 * 1024,
            **connection(s),
        )
        self.resources.push_async_callback(producer.stop)
        await with_backoff(
            "snapshot replies",
            producer.start,
            bootstrap=s.bootstrap,
            timeout=s.connect_timeout,
            security=s,
        )
        tp = TopicPartition(s.topics.snapshot_requests, 0)
        consumer.assign([tp])
        # Requests made before this publisher existed were answered by nobody; their senders
        # have timed out and fallen back to replay.
        await consumer.seek_to_end(tp)
        self._task = asyncio.create_task(self._serve(consumer, producer), name="snapshot-responder")

    async def stop(self) -> None:
        """Stop answering, then close the clients. Safe to call twice, and after a failed start."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await super().stop()

    async def _serve(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    await self._answer(producer, record.value)

    async def _answer(self, producer: AIOKafkaProducer, value: bytes | None) -> None:
        try:
            request = decode_as(value or b"", SnapshotRequest)
        except SchemaError as exc:
            self.requests_rejected += 1
            log.warning("ignoring a bad snapshot request: %s", exc)
            return
        replies = self.settings.topics.snapshot_replies("")
        if not request.reply_to.startswith(replies):
            # The reply is signed: never on a topic that is not a reply topic (md.quotes...).
            self.requests_rejected += 1
            log.warning(
                "ignoring a snapshot request to reply on %r (not a %s* topic)",
                request.reply_to[:100],
                replies,
            )
            return
        key = request.request_id.encode()
        for reply in self.replies(request):
            value = reply.encode()
            headers = self._signer.headers(request.reply_to, key, value) if self._signer else []
            try:
                await producer.send(request.reply_to, value, key=key, headers=headers)
            except KafkaError as exc:
                log.warning(
                    "cannot answer snapshot %s on %s: %r", request.request_id, request.reply_to, exc
                )
                return
        self.requests_served += 1

    def replies(self, request: SnapshotRequest) -> list[SnapshotReply]:
        """The reply parts for ``request``, built from one consistent view (no await inside)."""
        quotes: list[bytes] = []
        missing: list[str] = []
        for symbol in dict.fromkeys(request.symbols):
            value = self.latest.get(symbol.encode("ascii"))
            if value is None:
                missing.append(symbol)
            else:
                quotes.append(value)
        positions = sorted(self.position.items())
        chunks = [
            quotes[i : i + MAX_QUOTES_PER_PART] for i in range(0, len(quotes), MAX_QUOTES_PER_PART)
        ]
        chunks = chunks or [[]]
        return [
            SnapshotReply(
                request_id=request.request_id,
                epoch=self.epoch,
                part=i,
                parts=len(chunks),
                quotes=tuple(chunk),
                offsets=tuple((p, pos.offset) for p, pos in positions),
                missing=tuple(missing) if i == 0 else (),
                generations=tuple((p, pos.generation) for p, pos in positions),
            )
            for i, chunk in enumerate(chunks)
        ]
