"""Reads exact high watermarks (the offset the next record will get) of whole topics.

Used for status lines and lag. A broker answers ListOffsets(latest) with the high watermark,
except that Tansu 0.6.0 (memory engine, measured here) answers with the *base offset of the last
record batch* + 1: after one batch of 10 records, 1 instead of 10. Its fetch responses carry the
exact high watermark of every partition they cover, records or not (checked: equal to the count
produced on all 16 partitions, 3 ms after the seek). So the reader seeks each partition to the
ListOffsets answer minus one (never past the true end) and fetches until the consumer knows each
partition's high watermark. Waiting for records instead is slow: Tansu returns the records of
only a few partitions per response (16 partitions at 2k msg/s took 18-26 rounds, 1.5-2.2 s).
Against Apache Kafka the fetch changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError
from common.generations.naming import Generations, parse_generation
from common.kafka import close_consumer, with_backoff
from common.kafkasec import PLAINTEXT, KafkaSecurity, connection
from common.lifecycle import Lifecycle

_TAIL_FETCH_TIMEOUT_S = 1.0
# A ListOffsets takes milliseconds (on the embedded broker, under 0.1 s even at 200k batches);
# one that has not answered in seconds is stuck on a deleted topic (see _end_offsets).
_LIST_ATTEMPT_S = 2.0
_LIST_TIMEOUT_S = 40.0  # aiokafka's request timeout: the most a read waited before


def _partitions(cluster: ClusterMetadata, topic: str) -> set[int]:
    return cluster.partitions_for_topic(topic) or set()


class WatermarkReader(Lifecycle):
    def __init__(
        self, bootstrap: str, *, connect_timeout: float = 20.0, security: KafkaSecurity = PLAINTEXT
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self._connect_timeout = connect_timeout
        self._consumer: AIOKafkaConsumer | None = None
        # One consumer serves every caller, and a read reassigns it: two reads at once (a
        # background sampler and a last look at the end of a window) would unassign each
        # other's partitions mid-fetch ("Partition is not assigned"). Reads take turns.
        self._turn = asyncio.Lock()
        self.list_attempt_s = _LIST_ATTEMPT_S

    async def _start(self) -> None:
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            client_id="watermarks",
            fetch_max_wait_ms=10,
            # Only the high watermark is wanted; the broker still returns at least one batch.
            max_partition_fetch_bytes=1024,
            **connection(self.security),
        )
        # Registered before it starts: one that fails to start must be closed all the same.
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "watermarks",
            consumer.start,
            bootstrap=self.bootstrap,
            timeout=self._connect_timeout,
            security=self.security,
        )
        self._consumer = consumer

    async def stop(self) -> None:
        self._consumer = None
        await super().stop()

    async def topics(self) -> set[str]:
        """Every topic on the broker (fresh metadata)."""
        consumer = self._started()
        try:
            return set(await consumer.topics())
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot read topics from {self.bootstrap}: {exc}"
            ) from None

    async def generation_marks(self, base: str) -> dict[tuple[int, int], int]:
        """(generation, partition) -> high watermark, for every generation of ``base`` on the
        broker (``common.generations``; generation 0 is the plain topic)."""
        found = Generations.from_names(base, await self.topics())
        marks = await self.high_watermarks(found.topics())
        return {
            (parse_generation(base, tp.topic) or 0, tp.partition): high
            for tp, high in marks.items()
        }

    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("WatermarkReader not started")
        return self._consumer

    async def high_watermarks(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """End offset of every partition of ``topics``; a topic that does not exist is skipped."""
        consumer = self._started()
        async with self._turn:
            return await self._high_watermarks(consumer, topics)

    async def _high_watermarks(
        self, consumer: AIOKafkaConsumer, topics: Iterable[str]
    ) -> dict[TopicPartition, int]:
        try:
            # consumer.topics() fetches fresh metadata but does not update the view that
            # partitions_for_topic() reads, so a topic created after start() would stay
            # invisible; read the partitions from the fresh metadata itself.
            cluster = await consumer._client.fetch_all_metadata()
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(cluster.partitions_for_topic(topic) or ())
            ]
            if not tps:
                return {}
            listed = await self._end_offsets(consumer, tps)
            return await self._exact(consumer, listed)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot read offsets from {self.bootstrap}: {exc}"
            ) from None

    async def _end_offsets(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """ListOffsets(latest) of ``tps``, but of a topic deleted meanwhile: an old generation,
        which the publisher deletes every few seconds, may go between the metadata that named
        it and this request, and aiokafka retries such a partition until its request timeout
        (40 s) and fails the whole read. So each attempt is bounded, and after one that ran out
        the partitions of topics that are gone are left out."""
        deadline = time.monotonic() + _LIST_TIMEOUT_S
        while True:
            try:
                listed: dict[TopicPartition, int] = await asyncio.wait_for(
                    consumer.end_offsets(tps), self.list_attempt_s
                )
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailableError(
                        f"cannot read offsets from {self.bootstrap}: no answer within "
                        f"{_LIST_TIMEOUT_S:g}s"
                    ) from None
                cluster = await consumer._client.fetch_all_metadata()
                tps = [tp for tp in tps if tp.partition in _partitions(cluster, tp.topic)]
                if not tps:
                    return {}
            else:
                return listed

    @staticmethod
    async def _exact(
        consumer: AIOKafkaConsumer, listed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        exact = dict(listed)
        # ListOffsets says 0 only for an empty partition (else it is at least 1).
        tails = [tp for tp, end in listed.items() if end > 0]
        if not tails:
            return exact
        # A fresh assignment forgets the high watermarks of the previous call.
        consumer.assign(tails)
        for tp in tails:
            consumer.seek(tp, listed[tp] - 1)
        pending = set(tails)
        deadline = time.monotonic() + _TAIL_FETCH_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=20, max_records=1)
            for tp in list(pending):
                high = consumer.highwater(tp)
                records = batches.get(tp)
                if high is None and not records:
                    continue
                last = records[-1].offset + 1 if records else 0
                exact[tp] = max(exact[tp], last, high or 0)
                pending.discard(tp)
        # Stop the background fetcher until the next call.
        consumer.pause(*tails)
        await asyncio.sleep(0)
        consumer.assign([])
        return exact
