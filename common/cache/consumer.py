"""The caching consumer: keeps one service's Redis equal to the feed, for its symbols only.

It assigns itself only the quote partitions that hold its symbols (no consumer group to join),
filters records by key before decoding, conflates each fetched batch to the newest quote per
symbol, and writes quotes and the positions they came with in one MULTI/EXEC. It reads across
generations (``common.generations``): each partition switches to the next generation exactly
at its rollover marker, and its position, (generation, offset), is stored with the quotes. It
starts by resuming from the positions in Redis; symbols it has no value for are filled from a
snapshot of the publisher (``common.cache.filling``). Interest can change while it runs; the
assignment follows.

Faults: Redis unreachable -> retry with backoff, holding the batch and the position; Redis
restarted empty -> rebuild from a snapshot; offsets out of range (a broker that lost its data)
or a generation deleted before the cache read it to its end (it was away too long) ->
re-snapshot those partitions, with one log line; the broker gone -> aiokafka reconnects; a bad
record -> dead-letter topic. Forged data (the signed feed, ``common.feedsign``): the quote a
batch would apply for a symbol must be signed and plausible, else it is dead-lettered and the
next newest tried; a rollover marker or a snapshot reply that is not signed is dead-lettered
and never obeyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from common.cache.batch import KeyFilter, PreparedBatch, Version, prepare
from common.cache.filling import Plan
from common.cache.keys import CacheKeys, StartMode
from common.cache.parts import CacheParts, open_parts
from common.cache.settings import CacheSettings
from common.generations.position import Position
from common.generations.rollover import Chunk
from common.lifecycle import Lifecycle, cancel_and_wait
from common.partitioner import partition_for
from common.redisconn import redis_retry, unreachable
from common.retry import Retry

log = logging.getLogger(__name__)

T = TypeVar("T")

_HEARTBEAT_S = 1.0
# How often the cache checks that the generations it reads still exist (a metadata request).
_GENERATION_CHECK_S = 2.0


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
        # Resolved first: a missing or unreadable key is one line before anything connects.
        self.trust = settings.trust()
        self._on_applied = on_applied
        self.service = service
        self.topic = settings.topics.quotes  # the base name; partitions read its generations
        self.keys = CacheKeys(settings.redis_prefix)
        self.group_id = group_id or f"marketfeed.{service}.quote-cache"
        self.counts: Counter[str] = Counter()
        self._wanted: frozenset[str] = frozenset(interest)
        self._interest: frozenset[str] = frozenset()
        self._filter = KeyFilter(())
        self._versions: dict[str, Version] = {}
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
        self._parts: CacheParts | None = None

    @property
    def start_mode(self) -> StartMode | None:
        """How the cache was filled when it started (resume, snapshot or replay)."""
        return self._parts.filler.start_mode if self._parts is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._task is not None:
            return
        parts = self._parts = await open_parts(
            self.settings,
            self.resources,
            service=self.service,
            group_id=self.group_id,
            with_redis=self._with_redis,
            versions=self._versions,
            counts=self.counts,
            trust=self.trust,
        )
        store, filler = parts.store, parts.filler
        existed = await self._with_redis(
            "open cache",
            lambda: store.initialise(self._meta()),
            timeout=self.settings.connect_timeout,
        )
        stored: dict[int, Position] = {}
        previous: frozenset[str] = frozenset()
        if existed:
            stored = await self._still_there(await store.load_positions())
            previous = await store.load_interest()
            self._versions.update(await store.load_versions(self._wanted))
        await self._reconcile(stored, previous)
        filler.start_mode = filler.start_mode or StartMode.RESUME
        await store.client.hset(self.keys.meta, "start", filler.start_mode.value)
        self._task = asyncio.create_task(self._loop(), name=f"{self.service}-quote-cache")
        self._warm.set()

    async def _still_there(self, stored: dict[int, Position]) -> dict[int, Position]:
        """The stored positions whose generation is still on the broker; the others are left
        to a snapshot (the cache was away longer than the generations it stood in lived)."""
        found = await self._parts_ok().follower.existing()
        gone = sorted(p for p, pos in stored.items() if pos.generation not in found)
        if gone:
            log.warning(
                "%s: partitions %s: their generation was deleted while the cache was away; "
                "re-snapshotting",
                self.service,
                gone,
            )
            await self._count("lost_generations")
        return {p: pos for p, pos in stored.items() if p not in gone}

    async def stop(self) -> None:
        """Stop consuming, commit, close every connection in reverse order. Safe to call twice."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for waiter in self._caught_up:
            waiter.cancel()
        self._caught_up.clear()
        await super().stop()
        self._parts = None

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
        return self._parts.store.instance if self._parts is not None else ""

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
        return frozenset(self._parts.follower.positions) if self._parts else frozenset()

    @property
    def positions(self) -> dict[int, Position]:
        """Where each assigned partition is read next: (generation, offset)."""
        return dict(self._parts.follower.positions) if self._parts else {}

    @property
    def high_watermarks(self) -> dict[int, int]:
        """Partition -> high watermark of the generation it reads, as the last fetch saw it."""
        return dict(self._hw)

    @property
    def redis_retry(self) -> Retry:
        """The state of its Redis (``failing``, ``failures``): for status lines and metrics."""
        return self._redis_retry

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
        parts = self._parts_ok()
        follower, filler = parts.follower, parts.filler
        last_beat = last_check = 0.0
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
            await filler.fill_gaps(self._wanted)
            try:
                chunks = await follower.fetch(timeout_ms=200)
            except OffsetOutOfRangeError as exc:
                lost = {tp.partition for tp in (exc.args[0] if exc.args else {})}
                await self._lost(lost or set(follower.positions), "offsets out of range")
                await self._count("out_of_range")
                continue
            self._note_high_watermarks()
            if chunks:
                await self._apply(chunks)
            elif time.monotonic() - last_beat > _HEARTBEAT_S:
                last_beat = time.monotonic()
                ok = await self._with_redis("heartbeat", lambda: parts.store.heartbeat(self._hw))
                if not ok:
                    self.lost()
            if time.monotonic() - last_check > _GENERATION_CHECK_S:
                last_check = time.monotonic()
                await self._check_generations()
            parts.committer.maybe_commit()

    async def _apply(self, chunks: Mapping[int, Chunk]) -> None:
        parts = self._parts_ok()
        batch = prepare(
            chunks,
            self._filter,
            self._versions,
            self.trust,
            context=self.topic,
            now_ns=time.time_ns(),
        )
        if batch.rejected:
            await parts.dead.store_rejected(self.topic, batch.rejected)
        ok = await self._with_redis("apply", lambda: parts.store.apply(batch, self._hw))
        if self._on_applied is not None:
            self._on_applied(batch, time.time_ns())
        self.counts.update(batch.counts())
        if not ok:
            log.warning("%s: Redis lost the cache (restarted empty?); rebuilding", self.service)
            self.lost()
        if batch.gaps:
            parts.filler.note_gaps(batch.gaps)

    def _note_high_watermarks(self) -> None:
        follower = self._parts_ok().follower
        for partition in follower.positions:
            high = follower.highwater(partition)
            if high is not None:
                self._hw[partition] = high

    async def _check_generations(self) -> None:
        """Partitions whose generation was deleted before the cache read it to its marker."""
        try:
            gone = await self._parts_ok().follower.missing()
        except KafkaError:
            return  # the broker is away: aiokafka reconnects, and the next check will tell
        if gone:
            await self._lost(gone, "its generation was deleted before it was read to its end")
            await self._count("lost_generations")

    # -- filling the cache -----------------------------------------------------------------

    async def _reconcile(
        self, stored: Mapping[int, Position], previous: frozenset[str] = frozenset()
    ) -> None:
        """Move from the current interest and assignment to the wanted ones.

        ``stored`` and ``previous`` are what Redis held at start (positions and interest of an
        earlier run): symbols and partitions no longer wanted are evicted and forgotten too.
        """
        parts, wanted = self._parts_ok(), self._wanted
        follower, filler, store = parts.follower, parts.filler, parts.store
        count = self.settings.partitions
        added = wanted - self._interest
        removed = (self._interest | previous) - wanted
        new_parts = {partition_for(s, count) for s in wanted}
        current = follower.positions
        released = (set(current) | set(stored)) - new_parts
        plan: Plan = {p: pos for p, pos in current.items() if p in new_parts}
        for partition in new_parts & set(stored):
            plan.setdefault(partition, stored[partition])
        for symbol in removed:
            self._versions.pop(symbol, None)
        # A partition placed from a snapshot skips what came before it: every symbol of it is
        # asked for, cached or not (a position lost with its generation, or never stored).
        unplaced = new_parts - set(plan)
        need = sorted(
            s
            for s in wanted
            if (s in added and s not in self._versions) or partition_for(s, count) in unplaced
        )
        affected = unplaced | {partition_for(s, count) for s in need}
        if affected:
            await filler.fill(need, affected, plan, wanted)
        for partition in released:
            self._hw.pop(partition, None)
        await self._with_redis("forget", lambda: store.forget_partitions(released))
        await self._with_redis(
            "interest", lambda: store.set_interest(wanted, removed, self._meta(wanted, new_parts))
        )
        await follower.place(plan)
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

    async def _lost(self, lost: set[int], why: str) -> None:
        """Positions the broker no longer has: start those partitions over from a snapshot."""
        log.warning("%s: partitions %s: %s; re-snapshotting", self.service, sorted(lost), why)
        parts, count = self._parts_ok(), self.settings.partitions
        symbols = sorted(s for s in self._interest if partition_for(s, count) in lost)
        plan: Plan = {p: pos for p, pos in parts.follower.positions.items() if p not in lost}
        await parts.filler.fill(symbols, lost, plan, self._wanted)
        await parts.follower.place(plan)

    async def _rebuild(self) -> None:
        """Redis lost the cache: start again as a new, empty cache."""
        self._resync = False
        self._versions.clear()
        parts = self._parts_ok()
        await parts.follower.place({})
        self._interest = frozenset()
        parts.filler.start_mode = None
        await self._with_redis("reopen", lambda: parts.store.initialise(self._meta()))
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

    async def _count(self, name: str) -> None:
        """One more ``name`` event, in ``counts`` and in the cache's stats in Redis."""
        self.counts[name] += 1
        store = self._parts_ok().store
        await self._with_redis(name, lambda: store.count(name))

    def _parts_ok(self) -> CacheParts:
        assert self._parts is not None, "cache not started"
        return self._parts
