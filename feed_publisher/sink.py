"""Sends the publisher's records to Kafka in whole batches, in order, until each is acknowledged.

One lane per partition of each market-data topic (``md.quotes`` partition 3, ...), whatever
the generation. A lane sends one batch at a time, the next only once that one is acknowledged,
so records reach a partition in the order they were handed in, across generations too: the
records of generation N + 1 leave only after generation N's rollover marker was acknowledged.
While a lane waits for its acknowledgement, what is handed in for it piles up and leaves as one
batch: fewer, bigger batches, which is what the embedded broker's fetch cost depends on.

Held, never dropped: a batch that fails (the broker gone, a request timeout) is sent again,
with backoff, before anything after it in its lane. A batch whose acknowledgement was lost (the
broker appended it, then its answer timed out) is so written twice; readers drop an ``(epoch,
seq)`` they have. The publisher's request timeout is as long as its give-up time by default, so
a broker that is frozen and comes back answers the request it had and nothing is sent twice.
``stalled`` is true while the broker has acknowledged nothing for ``stall_after`` seconds, or
from a failed send until one succeeds (the publisher then stops generating what comes due, see
``Publisher.run``); one line is logged when a send fails and one when the broker is back
(``common.retry``); a broker that acknowledges nothing for ``give_up_after`` seconds ends the
sink with a BrokerUnavailableError naming the cause.

Whole batches: ``AIOKafkaProducer.send()`` costs a future and an accumulator lookup per record;
a BatchBuilder per batch handed over with ``send_batch()`` costs one of each per batch. The
publisher knows each record's partition already (the shared murmur2 partitioner).

Signed: every record that leaves carries the signature headers of the signed feed
(``common.feedsign``), made when its batch is built.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError
from common.feedsign import Signer
from common.generations.naming import generation_topic
from common.lifecycle import Lifecycle, cancel_all
from common.retry import Backoff, Retry, describe
from common.schema import ROLLOVER_KEY

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]
# Acknowledgement callback: (base topic, generation, partition, base offset, records) of one
# acknowledged batch; the records are in offset order, so record i has offset base + i.
AckListener = Callable[[str, int, int, int, list[Record]], None]

# Records taken for one batch at most; the builder's byte limit usually ends a batch first.
_MOST_RECORDS = 50_000


@dataclass(slots=True)
class _Lane:
    """The records of one partition of one base topic, waiting or in flight, in order."""

    base: str
    partition: int
    queue: deque[tuple[int, list[Record]]] = field(default_factory=deque)  # (generation, ...)
    flight: tuple[int, list[Record]] | None = None
    since: float = 0.0  # time.monotonic() when the batch in flight was first sent
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    batches: Counter[int] = field(default_factory=Counter)  # acknowledged, per generation

    def take(self) -> tuple[int, list[Record]]:
        """The records at the head of the queue that belong to one generation."""
        generation, records = self.queue.popleft()
        records = list(records)
        while self.queue and self.queue[0][0] == generation and len(records) < _MOST_RECORDS:
            records.extend(self.queue.popleft()[1])
        self.flight = (generation, records)
        self.since = time.monotonic()
        return generation, records

    def put_back(self, generation: int, records: list[Record]) -> None:
        if records:
            self.queue.appendleft((generation, records))

    def held(self, generation: int | None = None) -> int:
        pending = [*self.queue, *([self.flight] if self.flight else [])]
        return sum(len(r) for g, r in pending if generation is None or g == generation)


class BatchSink(Lifecycle):
    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        bootstrap: str,
        give_up_after: float,
        stall_after: float = 5.0,
        flush_timeout: float = 10.0,
        signer: Signer | None = None,
    ) -> None:
        """``signer``: signs every record, markers included, for its topic's base name (the
        signed feed, ``common.feedsign``); None sends them unsigned."""
        self._producer = producer
        self._signer = signer
        self._bootstrap = bootstrap
        self._give_up_after = give_up_after
        self._stall_after = stall_after
        self._flush_timeout = flush_timeout
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[AckListener] = []
        self._changed = asyncio.Event()
        self._retry = Retry(
            f"Kafka at {bootstrap}", errors=(KafkaError,), backoff=Backoff(first=0.2, most=2.0)
        )
        self.error: BaseException | None = None
        self._stopped = False
        self._last_ack = time.monotonic()
        self.sent = 0  # records handed in
        self.acked = 0
        self.lost = 0  # held when the sink stopped: never acknowledged

    @property
    def retry(self) -> Retry:
        """The state of the broker's acknowledgements (``failing``, ``failures``): for metrics."""
        return self._retry

    def on_ack(self, listener: AckListener) -> None:
        self._listeners.append(listener)

    @property
    def held(self) -> int:
        """Records handed in and not acknowledged yet (waiting, in flight or being resent)."""
        return self.sent - self.acked - self.lost

    @property
    def stalled(self) -> bool:
        """True while the broker has acknowledged nothing for ``stall_after`` seconds with a
        send waiting that long, or from a failed send until one succeeds again. A broker that
        is slow but acknowledging (a busy machine) is not stalled: it gets what is due, late."""
        if self._retry.failing:
            return True
        waited = time.monotonic() - self._stall_after
        if self._last_ack >= waited:
            return False
        return any(lane.flight is not None and lane.since < waited for lane in self._lanes.values())

    async def _start(self) -> None:
        """Nothing to open: a lane starts with the first record handed to it."""

    def send(self, base: str, generation: int, by_partition: Mapping[int, list[Record]]) -> None:
        """Hand in records of generation ``generation`` of ``base``, by partition; never waits."""
        if self._stopped:
            raise RuntimeError("records handed to a stopped sink")
        self.check()
        for partition, records in by_partition.items():
            if not records:
                continue
            lane = self._lane(base, partition)
            lane.queue.append((generation, records))
            lane.ready.set()
            self.sent += len(records)

    def mark(self, base: str, generation: int, partition: int, marker: bytes) -> None:
        """Hand in the rollover marker that ends ``partition`` of ``generation``."""
        self.send(base, generation, {partition: [(ROLLOVER_KEY, marker)]})

    def check(self) -> None:
        """Raise the error that ended a lane (the broker gone for good), if one did."""
        if self.error is not None:
            raise self.error

    async def room(self, most_held: int) -> None:
        """Until at most ``most_held`` records are held, or the broker is stalled (the caller
        then drops what comes due rather than pile it up)."""
        while self.held > most_held and not self.stalled and self.error is None:
            await self._wait_change()

    async def flush(self, timeout: float | None = None) -> None:
        """Until everything handed in is acknowledged, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + (self._flush_timeout if timeout is None else timeout)
        while self.held and self.error is None and time.monotonic() < deadline:
            await self._wait_change(deadline - time.monotonic())

    def held_in(self, generation: int) -> int:
        """Records of ``generation`` not acknowledged yet, over every lane."""
        return sum(lane.held(generation) for lane in self._lanes.values())

    def most_batches(self, generation: int) -> int:
        """Batches acknowledged in the fullest partition of ``generation``."""
        return max((lane.batches[generation] for lane in self._lanes.values()), default=0)

    async def stop(self) -> None:
        """Flush (bounded), then stop every lane; what is still held then is lost, and said."""
        self._stopped = True
        if self._tasks and self.error is None:
            await self.flush()
        tasks, self._tasks = self._tasks, []
        await cancel_all(tasks)
        lost = self.held
        if lost:
            self.lost += lost
            log.error(
                "%d records were never acknowledged by Kafka at %s and are lost",
                lost,
                self._bootstrap,
            )
        self._lanes.clear()
        await super().stop()

    # -- lanes -----------------------------------------------------------------------------

    def _lane(self, base: str, partition: int) -> _Lane:
        lane = self._lanes.get((base, partition))
        if lane is None:
            lane = self._lanes[(base, partition)] = _Lane(base, partition)
            task = asyncio.create_task(self._run(lane), name=f"sink {base}[{partition}]")
            task.add_done_callback(self._ended)
            self._tasks.append(task)
        return lane

    async def _run(self, lane: _Lane) -> None:
        while True:
            if not lane.queue:
                lane.ready.clear()
                await lane.ready.wait()
                continue
            generation, records = lane.take()
            topic = generation_topic(lane.base, generation)
            try:
                offset, count = await self._retry.run(
                    functools.partial(self._deliver, lane.base, topic, lane.partition, records),
                    what=f"sending to {topic}[{lane.partition}]",
                    timeout=self._give_up_after,
                    give_up=self._give_up,
                )
            except BaseException:
                lane.flight = None
                lane.put_back(generation, records)  # held, not lost, whatever stopped us
                raise
            lane.flight = None
            lane.put_back(generation, records[count:])  # what did not fit in the batch
            done = records[:count]
            lane.batches[generation] += 1
            self.acked += count
            self._last_ack = time.monotonic()
            for listener in self._listeners:
                listener(lane.base, generation, lane.partition, offset, done)
            self._changed.set()

    async def _deliver(
        self, base: str, topic: str, partition: int, records: list[Record]
    ) -> tuple[int, int]:
        """One batch of the first ``records`` that fit; (its base offset, how many it held)."""
        batch = self._producer.create_batch()
        count = 0
        signer = self._signer
        for key, value in records:
            # Signed here, once per send: a record is signed for its base topic, so a resend
            # into the same generation carries the same signature.
            headers = signer.headers(base, key, value) if signer is not None else []
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                break
            count += 1
        future = await self._producer.send_batch(batch, topic, partition=partition)
        # Not ``await future``: cancelling that (a stop) would cancel aiokafka's shield, and
        # the batch, failed later by the producer's close, would be reported as an exception
        # nobody retrieved. Its outcome is taken here whenever it comes.
        future.add_done_callback(_retrieved)
        await asyncio.wait([future])
        metadata = future.result()
        return int(metadata.offset), count

    def _give_up(self, exc: BaseException, spent: float) -> BrokerUnavailableError:
        return BrokerUnavailableError(
            f"Kafka at {self._bootstrap} acknowledged nothing for {spent:.0f}s "
            f"(--connect-timeout): {describe(exc)}"
        )

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
        self._changed.set()

    async def _wait_change(self, timeout: float = 0.2) -> None:
        # Bounded: the broker starting to fail (Retry's state) sets no event.
        self._changed.clear()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._changed.wait()
        except TimeoutError:
            pass


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
