"""Rolls the market-data topics to their next generation, and deletes the old generations.

Generations mode only (``common.generations``). A roll is due when a partition of the current
generation holds ``--roll-batches`` record batches (the embedded broker lists every batch of a
partition on each fetch) or ``--roll-seconds`` have passed, whichever comes first. A roll:

1. creates both topics of generation N + 1, in the background: publishing goes on into N
   meanwhile, and a broker that freezes then holds up nothing (a roll that cannot create them
   is tried again a second later);
2. hands the sink a rollover marker for every partition of generation N, naming N + 1;
3. writes everything from then on to N + 1. The sink sends a partition's records of N + 1 only
   once its marker is acknowledged, so every partition of N ends with its marker.

Then, in the background, generations up to N + 1 - ``--keep-generations`` whose records are all
acknowledged are deleted whole (DeleteTopics frees the broker's memory at once; DeleteRecords is
never called: the embedded broker does not implement it). A deletion that fails is logged and
tried again after the next roll. No roll is started while the broker is stalled.

The producer stops tracking a generation's topics before they are deleted: the embedded broker
creates any topic a client asks metadata of, and a producer refreshes the metadata of every
topic it has sent to, each time it sends to a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError
from common.generations.naming import Generations, generation_topic
from common.kafka import create_topics, market_data_topics
from common.lifecycle import Lifecycle, cancel_all
from common.retry import describe
from common.schema import Rollover
from feed_publisher.config import PublisherConfig
from feed_publisher.sink import BatchSink

log = logging.getLogger(__name__)

_RETRY_ROLL_S = 1.0
# Kafka's error code for a topic that does not exist: already deleted, which is what we wanted.
_UNKNOWN_TOPIC = 3


def mark(
    sink: BatchSink,
    *,
    base: str,
    generation: int,
    following: int,
    partitions: range,
    epoch: int,
) -> None:
    """Hand the sink a marker ending each of ``partitions`` of ``generation`` of ``base``."""
    now = time.time_ns()
    for partition in partitions:
        marker = Rollover(
            topic=base,
            generation=generation,
            next_generation=following,
            next_topic=generation_topic(base, following),
            partition=partition,
            epoch=epoch,
            ts_ns=now,
        )
        sink.mark(base, generation, partition, marker.encode())


class GenerationRoller(Lifecycle):
    def __init__(
        self,
        config: PublisherConfig,
        sink: BatchSink,
        admin: AIOKafkaAdminClient,
        producer: AIOKafkaProducer,
        *,
        epoch: int,
        generation: int,
    ) -> None:
        self.config = config
        self.sink = sink
        self.admin = admin
        self.producer = producer
        self.epoch = epoch
        self.generation = generation
        self.rolls = 0
        self.deleted = 0  # generations deleted
        self.delete_failures = 0
        # Asked to be deleted, not seen gone yet: a request that timed out may still be done
        # by the broker later, and a generation gone at the next look is counted then.
        self._doomed: set[int] = set()
        self._deleted: set[int] = set()  # each counted once, however often it is re-created
        self._since = time.monotonic()
        self._not_before = 0.0
        self._roll_failing = False
        self._creating: asyncio.Task[bool] | None = None
        self._deleting: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        """Nothing to open: the admin client is the publisher's."""

    async def stop(self) -> None:
        await cancel_all([t for t in (self._creating, self._deleting) if t is not None])
        self._creating = self._deleting = None
        await super().stop()

    def due(self) -> bool:
        now = time.monotonic()
        if self.sink.stalled or now < self._not_before:
            return False
        full = self.sink.most_batches(self.generation) >= self.config.roll_batches
        return full or now - self._since >= self.config.roll_seconds

    def maybe_roll(self) -> None:
        """The publishing loop's step, never a wait: a roll that is due starts creating the
        next generation's topics in the background; once they exist, it rolls (markers, the
        switch) and starts deleting old generations in the background."""
        task = self._creating
        if task is None:
            if self.due():
                following = self.generation + 1
                self._creating = asyncio.create_task(
                    self._create(following), name=f"create generation {following}"
                )
            return
        if not task.done():
            return
        self._creating = None
        if task.result():
            self._switch()
            self.delete_in_background()

    async def roll(self) -> bool:
        """Roll to the next generation now; False if its topics could not be created (yet)."""
        if not await self._create(self.generation + 1):
            return False
        self._switch()
        return True

    async def _create(self, generation: int) -> bool:
        cfg = self.config
        try:
            await create_topics(self.admin, cfg, market_data_topics(cfg, generation))
        except BrokerUnavailableError as exc:
            self._not_before = time.monotonic() + _RETRY_ROLL_S
            if not self._roll_failing:
                self._roll_failing = True
                log.warning("cannot roll to generation %d yet: %s; retrying", generation, exc)
            return False
        self._roll_failing = False
        return True

    def _switch(self) -> None:
        """Markers ending every partition of the current generation, then the next one."""
        cfg, following = self.config, self.generation + 1
        batches = self.sink.most_batches(self.generation)
        for base in cfg.topics.market_data:
            mark(
                self.sink,
                base=base,
                generation=self.generation,
                following=following,
                partitions=range(cfg.partitions),
                epoch=self.epoch,
            )
        log.info(
            "rolled to generation %d after %.1fs (%d batches in the fullest partition)",
            following,
            time.monotonic() - self._since,
            batches,
        )
        self.generation, self._since = following, time.monotonic()
        self.rolls += 1

    def delete_in_background(self) -> None:
        """Start ``delete_old`` unless it is running already (publishing does not wait)."""
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.create_task(self.delete_old(), name="delete generations")

    async def delete_old(self) -> None:
        """Delete the generations older than the ones kept, once all their records are
        acknowledged. A failure is logged and counted; the next roll tries again."""
        last = self.generation - self.config.keep_generations
        try:
            names = await self.admin.list_topics()
        except KafkaError as exc:
            self._failed(f"listing topics: {describe(exc)}")
            return
        doomed: dict[int, list[str]] = {}
        kept: list[str] = []
        found = {g for base in self.config.topics.market_data for g in _numbers(base, names)}
        for generation in sorted(self._doomed - found):
            self._gone(generation, "by an earlier request")
        for base in self.config.topics.market_data:
            for generation in _numbers(base, names):
                topic = generation_topic(base, generation)
                if generation <= last and not self.sink.held_in(generation):
                    doomed.setdefault(generation, []).append(topic)
                else:
                    kept.append(topic)
        if not doomed:
            return
        self.producer.client.set_topics(kept)
        self._doomed |= set(doomed)
        try:
            response = await self.admin.delete_topics([t for ts in doomed.values() for t in ts])
        except KafkaError as exc:
            self._failed(f"generations {sorted(doomed)}: {describe(exc)}")
            return
        refused = {
            topic: code
            for topic, code, *_ in response.topic_error_codes
            if code not in (0, _UNKNOWN_TOPIC)
        }
        for generation, topics in sorted(doomed.items()):
            if any(t in refused for t in topics):
                self._failed(f"generation {generation}: error codes {refused}")
            else:
                self._gone(generation, f"({', '.join(topics)})")

    def _gone(self, generation: int, how: str) -> None:
        self._doomed.discard(generation)
        if generation in self._deleted:
            # The embedded broker re-creates a topic a client asks metadata of: a reader that
            # still tracked a deleted generation brought it back, empty, and it went again.
            log.debug("deleted generation %d again (re-created empty by a client)", generation)
            return
        self._deleted.add(generation)
        self.deleted += 1
        log.info("deleted generation %d %s", generation, how)

    def _failed(self, what: str) -> None:
        self.delete_failures += 1
        log.warning("could not delete old generations (%s); trying again after the next roll", what)


def _numbers(base: str, names: list[str]) -> tuple[int, ...]:
    return Generations.from_names(base, names).numbers
