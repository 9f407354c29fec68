"""The caching consumer: keeps one service's Redis equal to the feed, for its symbols only.

It assigns itself only the quote partitions that hold its symbols (no consumer group to join),
filters records by key before decoding, conflates each fetched batch to the newest quote per
symbol, and writes quotes and the offsets they came with in one MULTI/EXEC. It starts by
resuming from the offsets in Redis; symbols it has no value for are filled from a snapshot of
the publisher, after which it consumes from exactly the snapshot's offsets (or, without an
answer, replays their partitions from the beginning). Interest can change while it runs; the
assignment follows.

Faults: Redis unreachable -> retry with backoff, holding the batch and the position; Redis
restarted empty -> rebuild from a snapshot; offsets out of range (a broker that lost its data)
-> re-snapshot; the broker gone -> aiokafka reconnects; a bad record -> dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from common.cache.batch import KeyFilter, PreparedBatch, Version, prepare
from common.cache.commits import OffsetCommitter
from common.cache.deadletters import DeadLetterSink
from common.cache.keys import CacheKeys, StartMode
from common.cache.settings import CacheSettings
from common.cache.snapshots import GapRequests, SnapshotClient
from common.cache.store import QuoteStore
from common.kafka import (
    TopicSpec,
    close_consumer,
    close_producer,
    ensure_topics,
    market_data_topics,
    start_producer,
    with_backoff,
)
from common.lifecycle import Lifecycle, cancel_and_wait
from common.partitioner import partition_for
from common.redisconn import redis_retry, unreachable
from common.schema import Quote

log = logging.getLogger(__name__)

T = TypeVar("T")

_BEGINNING = -1  # position sentinel: replay the partition from its first offset
_HEARTBEAT_S = 1.0
_GAP_SNAPSHOT_EVERY_S = 1.0


# Called after each batch is readable in Redis: (the batch, time.time_ns() when EXEC returned).
AppliedHook = Callable[[PreparedBatch, int], None]


class CachingConsumer(Lifecycle):
    def __init__(
        self,
        settings: CacheSettings,
        *,
        service: str,
        interest: Iterable[str],
        on_applied: AppliedHook | None = None,
        group_id: str | None = None,
    ) -> None:
        """``group_id``: where applied offsets are committed for lag tools (the group is
        never joined); default ``marketfeed.SERVICE.quote-cache``."""
        self.settings = settings
        self._on_applied = on_applied
        self.service = service
        self.topic = settings.topics.quotes
        self.keys = CacheKeys(settings.redis_prefix)
        self.group_id = group_id or f"marketfeed.{service}.quote-cache"
        self.counts: Counter[str] = Counter()
        self.start_mode: StartMode | None = None
        self._wanted: frozenset[str] = frozenset(interest)
        self._interest: frozenset[str] = frozenset()
        self._filter = KeyFilter(())
        self._versions: dict[str, Version] = {}
        self._next: dict[int, int] = {}
        self._hw: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._caught_up: list[asyncio.Future[None]] = []
        self._resync = False
        # Set while the cache holds its interest; clear from start and while it is rebuilt
        # after its Redis came back empty (readers wait on it rather than find nothing).
        self._warm = asyncio.Event()
        # One per cache: its Redis going away is logged once, however many writes wait on it.
        self._redis_retry = redis_retry(service, settings.redis_url, logger=log)
        self._task: asyncio.Task[None] | None = None
        self._store: QuoteStore | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._committer: OffsetCommitter | None = None
        self._snapshots: SnapshotClient | None = None
        self._gaps: GapRequests | None = None
        self._dead: DeadLetterSink | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._task is not None:
            return
        await self._open()
        store = self._store_ok()
        existed = await self._with_redis(
            "open cache",
            lambda: store.initialise(self._meta()),
            timeout=self.settings.connect_timeout,
        )
        stored: dict[int, int] = {}
        previous: frozenset[str] = frozenset()
        if existed:
            stored = await store.load_offsets()
            previous = await store.load_interest()
            self._versions = await store.load_versions(self._wanted)
        await self._reconcile(stored, previous)
        self.start_mode = self.start_mode or StartMode.RESUME
        await store.client.hset(self.keys.meta, "start", self.start_mode.value)
        self._task = asyncio.create_task(self._loop(), name=f"{self.service}-quote-cache")
        self._warm.set()

    async def _open(self) -> None:
        """Connect to Redis and the broker; each connection is closed by stop(), newest first."""
        s = self.settings
        client = aioredis.Redis.from_url(
            s.redis_url, socket_connect_timeout=2, socket_timeout=5, retry_on_timeout=False
        )
        self.resources.push_async_callback(client.aclose)
        self._store = QuoteStore(client, self.keys)
        await ensure_topics(
            s, [*market_data_topics(s), TopicSpec(s.topics.dead_letter(self.service), 1)]
        )
        producer = await start_producer(s, client_id=f"{self.service}-cache")
        self.resources.push_async_callback(close_producer, producer)
        self._dead = DeadLetterSink(
            producer, topic=s.topics.dead_letter(self.service), service=self.service
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            # The group is only for committing applied offsets where lag tools look for them;
            # partitions are assigned by hand, so the consumer never joins it.
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            client_id=f"{self.service}-cache",
        )
        # Registered before it starts: one that fails to start must be closed all the same.
        self.resources.push_async_callback(close_consumer, consumer)
        await with_backoff(
            "cache consumer", consumer.start, bootstrap=s.bootstrap, timeout=s.connect_timeout
        )
        self._consumer = consumer
        self._committer = OffsetCommitter(
            consumer,
            self.topic,
            positions=lambda: self._next,
            interval=s.commit_interval,
            counts=self.counts,
            service=self.service,
        )
        self.resources.push_async_callback(self._committer.close)
        self._snapshots = await self.resources.enter_async_context(
            SnapshotClient(s, producer, service=self.service)
        )
        self._gaps = GapRequests(
            self._snapshots, timeout=s.snapshot_timeout, every=_GAP_SNAPSHOT_EVERY_S
        )
        self.resources.push_async_callback(self._gaps.close)

    async def stop(self) -> None:
        """Stop consuming, commit, close every connection in reverse order. Safe to call twice."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for waiter in self._caught_up:
            waiter.cancel()
        self._caught_up.clear()
        await super().stop()
        self._consumer = None
        self._committer = None

    async def wait(self) -> None:
        """Until the consuming task ends (it ends only by stop() or an unexpected error).

        Cancelling the waiter leaves the task alone: stopping it is stop()'s job, in order.
        """
        if self._task is not None:
            await asyncio.shield(self._task)

    # -- readiness -------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True while the cache holds its interest: started, and not being rebuilt."""
        return self._warm.is_set()

    async def wait_warm(self) -> None:
        await self._warm.wait()

    @property
    def instance(self) -> str:
        """The cache's id, as written in ``P meta`` (a new one after each rebuild)."""
        return self._store.instance if self._store is not None else ""

    def lost(self) -> None:
        """Its Redis was found without the cache (restarted empty): rebuild it now."""
        self._resync = True
        self._warm.clear()

    # -- interest --------------------------------------------------------------------------

    @property
    def interest(self) -> frozenset[str]:
        return self._interest

    @property
    def wanted(self) -> frozenset[str]:
        """The symbols asked for, which ``interest`` becomes once the cache has caught up."""
        return self._wanted

    @property
    def assigned_partitions(self) -> frozenset[int]:
        return frozenset(self._next)

    def initial_interest(self, symbols: Iterable[str]) -> None:
        """Before start(): follow ``symbols`` from the first fill (no evict-then-refill)."""
        if self._task is not None:
            raise RuntimeError("initial_interest() is for a cache that has not started")
        self._wanted = frozenset(symbols)

    async def set_interest(self, symbols: Iterable[str]) -> None:
        """Follow exactly ``symbols`` from now on; returns once the cache has been re-filled."""
        self._wanted = frozenset(symbols)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._caught_up.append(waiter)
        self._changed.set()
        await waiter

    async def add_interest(self, *symbols: str) -> None:
        await self.set_interest(self._wanted | set(symbols))

    async def remove_interest(self, *symbols: str) -> None:
        await self.set_interest(self._wanted - set(symbols))

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        consumer = self._consumer_ok()
        last_beat = 0.0
        while True:
            if self._resync:
                await self._rebuild()
            if self._wanted != self._interest:
                await self._reconcile({})
            # Only once caught up with the latest ask: a set_interest() made while an earlier
            # reconcile was running is applied by the next one, and must wait for it.
            if self._changed.is_set() and self._wanted == self._interest:
                self._changed.clear()
                for waiter in self._caught_up:
                    if not waiter.done():
                        waiter.set_result(None)
                self._caught_up.clear()
            await self._apply_gap_snapshot()
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except OffsetOutOfRangeError as exc:
                await self._out_of_range(exc)
                continue
            self._note_high_watermarks()
            if batches:
                await self._apply(batches)
            elif time.monotonic() - last_beat > _HEARTBEAT_S:
                last_beat = time.monotonic()
                ok = await self._with_redis(
                    "heartbeat", lambda: self._store_ok().heartbeat(self._hw)
                )
                if not ok:
                    self.lost()
            self._committer_ok().maybe_commit()

    async def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        batch = prepare(
            {tp.partition: records for tp, records in batches.items()},
            self._filter,
            self._versions,
        )
        if batch.rejected:
            assert self._dead is not None, "cache not started"
            await self._dead.store_rejected(self.topic, batch.rejected)
        ok = await self._with_redis("apply", lambda: self._store_ok().apply(batch, self._hw))
        if self._on_applied is not None:
            self._on_applied(batch, time.time_ns())
        for partition, progress in batch.progress.items():
            self._next[partition] = progress.last_offset + 1
        self.counts.update(batch.counts())
        if not ok:
            log.warning("%s: Redis lost the cache (restarted empty?); rebuilding", self.service)
            self.lost()
        if batch.gaps:
            self._gaps_ok().note(batch.gaps)

    def _note_high_watermarks(self) -> None:
        consumer = self._consumer_ok()
        for partition in self._next:
            high = consumer.highwater(TopicPartition(self.topic, partition))
            if high is not None:
                self._hw[partition] = high

    # -- filling the cache -----------------------------------------------------------------

    async def _reconcile(
        self, stored: dict[int, int], previous: frozenset[str] = frozenset()
    ) -> None:
        """Move from the current interest and assignment to the wanted ones.

        ``stored`` and ``previous`` are what Redis held at start (offsets and interest of an
        earlier run): symbols and partitions no longer wanted are evicted and forgotten too.
        """
        wanted = self._wanted
        count = self.settings.partitions
        added = wanted - self._interest
        removed = (self._interest | previous) - wanted
        new_parts = {partition_for(s, count) for s in wanted}
        released = (set(self._next) | set(stored)) - new_parts
        for partition in new_parts & set(stored):
            self._next.setdefault(partition, stored[partition] + 1)
        for symbol in removed:
            self._versions.pop(symbol, None)
        need = sorted(s for s in added if s not in self._versions)
        unplaced = new_parts - set(self._next)
        affected = unplaced | {partition_for(s, count) for s in need}
        if affected:
            await self._fill(need, affected)
        for partition in released:
            self._next.pop(partition, None)
            self._hw.pop(partition, None)
        store = self._store_ok()
        await self._with_redis("forget", lambda: store.forget_partitions(released))
        await self._with_redis(
            "interest", lambda: store.set_interest(wanted, removed, self._meta(wanted, new_parts))
        )
        await self._assign(new_parts)
        self._interest = wanted
        self._filter = KeyFilter(wanted)
        log.info(
            "%s: following %d symbols on partitions %s (added %d, removed %d)",
            self.service,
            len(wanted),
            sorted(new_parts),
            len(added),
            len(removed),
        )

    async def _fill(self, symbols: list[str], partitions: set[int]) -> None:
        """Fill ``symbols`` from a snapshot and place ``partitions`` at its offsets."""
        snapshot = await self._snapshots_ok().request(symbols, self.settings.snapshot_timeout)
        store = self._store_ok()
        if snapshot is None:
            log.warning(
                "%s: no snapshot within %.1fs; replaying partitions %s from the beginning",
                self.service,
                self.settings.snapshot_timeout,
                sorted(partitions),
            )
            for partition in partitions:
                self._next[partition] = _BEGINNING
            await self._with_redis("offsets", lambda: store.forget_partitions(partitions))
            self.start_mode = self.start_mode or StartMode.REPLAY
            self.counts["replays"] += 1
            return
        fresh = self._newer(snapshot.quotes)
        positions = {}
        for partition in partitions:
            offset = snapshot.offsets.get(partition, 0)
            current = self._next.get(partition)
            # Never skip records we have not seen: go back if the snapshot is older than us.
            positions[partition] = offset if current is None else min(max(current, 0), offset)
        self._next.update(positions)
        applied = {p: o - 1 for p, o in positions.items() if o > 0}
        await self._with_redis("snapshot", lambda: store.write_snapshot(fresh, applied))
        self.counts["snapshots"] += 1
        self.counts["snapshot_quotes"] += len(fresh)
        self.start_mode = self.start_mode or StartMode.SNAPSHOT

    def _newer(self, quotes: list[tuple[Quote, bytes]]) -> list[tuple[Quote, bytes]]:
        """The quotes of interest newer than what is cached; remembers their versions."""
        out = []
        for quote, raw in quotes:
            version = (quote.epoch, quote.seq)
            cached = self._versions.get(quote.symbol)
            if quote.symbol in self._wanted and (cached is None or version > cached):
                self._versions[quote.symbol] = version
                out.append((quote, raw))
        return out

    async def _assign(self, partitions: set[int]) -> None:
        consumer = self._consumer_ok()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        replay = [tp for tp in tps if self._next[tp.partition] == _BEGINNING]
        if replay:
            # Explicit offsets rather than seek_to_beginning(): with a group id and no committed
            # offset, a lazy reset would fall back to auto_offset_reset ("none") and fail.
            firsts = await consumer.beginning_offsets(replay)
            for tp in replay:
                self._next[tp.partition] = firsts[tp]
        for tp in tps:
            consumer.seek(tp, self._next[tp.partition])

    async def _apply_gap_snapshot(self) -> None:
        snapshot = self._gaps_ok().take()
        if snapshot is not None:
            fresh = self._newer(snapshot.quotes)
            store = self._store_ok()
            await self._with_redis("gap fill", lambda: store.write_snapshot(fresh, {}))
            self.counts["gap_fills"] += len(fresh)

    async def _out_of_range(self, exc: OffsetOutOfRangeError) -> None:
        """Our positions are gone from the broker (it lost data): start those partitions over."""
        lost = {tp.partition for tp in (exc.args[0] if exc.args else {})} or set(self._next)
        log.warning(
            "%s: offsets out of range on partitions %s; re-snapshotting", self.service, sorted(lost)
        )
        count = self.settings.partitions
        symbols = sorted(s for s in self._interest if partition_for(s, count) in lost)
        for partition in lost:
            self._next.pop(partition, None)
        await self._fill(symbols, lost)
        await self._assign(set(self._next))
        self.counts["out_of_range"] += 1

    async def _rebuild(self) -> None:
        """Redis lost the cache: start again as a new, empty cache."""
        self._resync = False
        self._versions.clear()
        self._next.clear()
        self._interest = frozenset()
        self.start_mode = None
        await self._with_redis("reopen", lambda: self._store_ok().initialise(self._meta()))
        await self._reconcile({})
        self.counts["rebuilds"] += 1
        self._warm.set()

    # -- helpers ---------------------------------------------------------------------------

    def _meta(
        self, interest: frozenset[str] | None = None, partitions: set[int] | None = None
    ) -> dict[str, str | int]:
        meta: dict[str, str | int] = {
            "service": self.service,
            "topic": self.topic,
            "partitions": self.settings.partitions,
            "group_id": self.group_id,
        }
        if interest is not None:
            meta["interest_count"] = len(interest)
        if partitions is not None:
            meta["assigned"] = ",".join(map(str, sorted(partitions)))
        if self.start_mode is not None:
            meta["start"] = self.start_mode.value
        return meta

    async def _with_redis(
        self, what: str, op: Callable[[], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """Run a Redis operation until it succeeds; Redis being down is waited out, not fatal.

        With a ``timeout`` (start-up), give up then with one clear error instead.
        """
        try:
            return await self._redis_retry.run(
                op, what=what, timeout=timeout, give_up=unreachable(self.settings.redis_url)
            )
        finally:
            if self._redis_retry.failures:
                self.counts["redis_errors"] = self._redis_retry.failures

    def _store_ok(self) -> QuoteStore:
        assert self._store is not None, "cache not started"
        return self._store

    def _consumer_ok(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "cache not started"
        return self._consumer

    def _committer_ok(self) -> OffsetCommitter:
        assert self._committer is not None, "cache not started"
        return self._committer

    def _gaps_ok(self) -> GapRequests:
        assert self._gaps is not None, "cache not started"
        return self._gaps

    def _snapshots_ok(self) -> SnapshotClient:
        assert self._snapshots is not None, "cache not started"
        return self._snapshots
