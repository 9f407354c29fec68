"""An independent reader of the whole market-data history, written from the README's rule alone.

It does not use ``common.generations``: it lists the topics, starts every partition at offset 0
of the oldest generation ``BASE.gN`` (or the plain ``BASE`` when there is none), and reads in
offset order; a record keyed ``__rollover__`` ends the partition there, and the partition goes
on at offset 0 of the topic its msgpack value names in ``next_topic``. A partition is done when
it is at the end of the newest generation and the caller said the feed has stopped (or, not
``strict``, at the end of any generation: one a publisher died without closing). Each
partition is read by a consumer of its own, so that the reader keeps up with a live feed whose
old generations are being deleted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.lifecycle import cancel_all

MARKER_KEY = b"__rollover__"


@dataclass(frozen=True, slots=True)
class Read:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


@dataclass(slots=True)
class History:
    records: dict[int, list[Read]]  # partition -> every record, in reading order
    markers: dict[int, list[Read]]  # partition -> the markers crossed, in order

    def all(self) -> list[Read]:
        return [r for records in self.records.values() for r in records]


def generations_of(base: str, names: set[str]) -> list[int]:
    found = (re.fullmatch(re.escape(base) + r"\.g([0-9]+)", name) for name in names)
    return sorted(int(m.group(1)) for m in found if m)


async def newest_topic(consumer: AIOKafkaConsumer, base: str) -> tuple[str, str]:
    """The oldest and the newest generation's topic (the plain one when there is none)."""
    numbers = generations_of(base, set(await consumer.topics()))
    if not numbers:
        return base, base
    return f"{base}.g{numbers[0]}", f"{base}.g{numbers[-1]}"


async def read_history(
    bootstrap: str,
    base: str,
    partitions: int,
    *,
    stopped: asyncio.Event | None = None,
    strict: bool = True,
    timeout: float = 30.0,
) -> History:
    """Every record of ``base`` from the oldest generation on; while ``stopped`` is not set,
    the reader follows the feed (None: it has stopped already)."""
    done = stopped or asyncio.Event()
    if stopped is None:
        done.set()
    history = History({}, {})
    reading = asyncio.gather(
        *(_partition(bootstrap, base, p, done, strict) for p in range(partitions))
    )
    stop_waiting = asyncio.ensure_future(done.wait())
    try:
        # Following lasts as long as the test runs its feed (however slow a loaded machine
        # makes that); only reading to the end once it has stopped is bounded by ``timeout``.
        either: list[asyncio.Future[Any]] = [reading, stop_waiting]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        async with asyncio.timeout(timeout):
            results = await reading
    finally:
        await cancel_all([reading, stop_waiting])
    for partition, (records, markers) in enumerate(results):
        history.records[partition] = records
        history.markers[partition] = markers
    return history


async def _partition(
    bootstrap: str, base: str, partition: int, stopped: asyncio.Event, strict: bool
) -> tuple[list[Read], list[Read]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        topic, _ = await newest_topic(consumer, base)
        records: list[Read] = []
        markers: list[Read] = []
        while True:
            following = await _generation(
                consumer, base, topic, partition, stopped, strict, records
            )
            if following is None:
                return records, markers
            markers.append(following)
            topic = msgpack.unpackb(following.value)["next_topic"]
    finally:
        await consumer.stop()


async def _generation(
    consumer: AIOKafkaConsumer,
    base: str,
    topic: str,
    partition: int,
    stopped: asyncio.Event,
    strict: bool,
    records: list[Read],
) -> Read | None:
    """Read ``topic``'s partition from 0 into ``records``: its marker, or None at the end."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    loop = asyncio.get_running_loop()
    since: float | None = None  # when the stop was first seen
    while True:
        for record in (await consumer.getmany(tp, timeout_ms=100)).get(tp, []):
            read = Read(topic, partition, record.offset, record.key, record.value)
            if record.key == MARKER_KEY:
                return read
            records.append(read)
        if stopped.is_set() and since is None:
            since = loop.time()
        # The high watermark is the last fetch response's: only one sent well after the stop
        # (fetches are 50 ms apart at most) is sure to count the last records.
        high = consumer.highwater(tp)
        settled = since is not None and loop.time() - since > 0.3
        if settled and high is not None and await consumer.position(tp) >= high:
            _, newest = await newest_topic(consumer, base)
            if topic == newest or not strict:
                return None
            if await _empty_next(consumer, base, topic, newest, partition):
                return None


async def _empty_next(
    consumer: AIOKafkaConsumer, base: str, topic: str, newest: str, partition: int
) -> bool:
    """Whether ``newest`` is the generation after ``topic``, with ``partition`` empty: the
    roller creates the next generation's topics ahead of its roll, so a feed stopped in between
    leaves one there that nothing was ever written to. The feed's end is then ``topic``'s."""
    numbers = generations_of(base, {topic, newest})
    if len(numbers) != 2 or numbers[1] != numbers[0] + 1 or newest != f"{base}.g{numbers[1]}":
        return False
    tp = TopicPartition(newest, partition)
    return (await consumer.end_offsets([tp])).get(tp) == 0
