"""Filling a quote cache: from the publisher's snapshot, or by replaying partitions.

A cache that lacks symbols (a cold start, a new interest, Redis restarted empty, a partition
whose generation was deleted before it was read) asks the publisher for a snapshot of them: it
writes the values and places their partitions at exactly the snapshot's positions, or where
they stand if that is earlier (records not seen are never skipped; reading one twice is harmless,
a quote not newer than the cached one is dropped). Without an answer within
``--snapshot-timeout`` it replays those partitions from the beginning of the oldest generation
still on the broker, and says so in its log. Symbols whose sequence numbers jumped are re-read
from snapshots in the background (``GapRequests``) and written here when the answer comes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from common.cache.batch import Version
from common.cache.keys import StartMode
from common.cache.snapshots import GapRequests, SnapshotClient
from common.cache.store import QuoteStore
from common.generations.follower import Start
from common.generations.position import Position
from common.schema import Quote

log = logging.getLogger(__name__)

# How the cache runs a Redis operation: (what, operation) -> its result, Redis outages waited out.
WithRedis = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
Plan = dict[int, Position | Start]


class Filler:
    def __init__(
        self,
        *,
        service: str,
        snapshots: SnapshotClient,
        gaps: GapRequests,
        store: QuoteStore,
        with_redis: WithRedis,
        versions: dict[str, Version],
        counts: Counter[str],
        timeout: float,
    ) -> None:
        self.service = service
        self._snapshots = snapshots
        self._gaps = gaps
        self._store = store
        self._with_redis = with_redis
        self.versions = versions  # the cache's own: what is cached, per symbol
        self._counts = counts
        self._timeout = timeout
        self.start_mode: StartMode | None = None  # how the first fill went

    async def fill(
        self, symbols: list[str], partitions: set[int], plan: Plan, wanted: frozenset[str]
    ) -> None:
        """Fill ``symbols`` from a snapshot and set ``partitions`` in ``plan`` to its positions
        (or to replay from the beginning, without an answer)."""
        snapshot = await self._snapshots.request(symbols, self._timeout)
        store = self._store
        if snapshot is None:
            log.warning(
                "%s: no snapshot within %.1fs; replaying partitions %s from the beginning",
                self.service,
                self._timeout,
                sorted(partitions),
            )
            for partition in partitions:
                plan[partition] = Start.BEGINNING
            await self._with_redis("offsets", lambda: store.forget_partitions(partitions))
            self.start_mode = self.start_mode or StartMode.REPLAY
            self._counts["replays"] += 1
            return
        fresh = self.newer(snapshot.quotes, wanted)
        placed: dict[int, Position] = {}
        for partition in partitions:
            at = snapshot.positions.get(partition)
            current = plan.get(partition)
            if at is None:
                plan[partition] = Start.BEGINNING  # a publisher that never saw the partition
            else:
                # Never skip records we have not seen: go back if the snapshot is older than us.
                placed[partition] = min(current, at) if isinstance(current, Position) else at
        plan.update(placed)
        await self._with_redis("snapshot", lambda: store.write_snapshot(fresh, placed))
        self._counts["snapshots"] += 1
        self._counts["snapshot_quotes"] += len(fresh)
        self.start_mode = self.start_mode or StartMode.SNAPSHOT

    def newer(
        self, quotes: Iterable[tuple[Quote, bytes]], wanted: frozenset[str]
    ) -> list[tuple[Quote, bytes]]:
        """The quotes of interest newer than what is cached; remembers their versions."""
        out = []
        for quote, raw in quotes:
            version = (quote.epoch, quote.seq)
            cached = self.versions.get(quote.symbol)
            if quote.symbol in wanted and (cached is None or version > cached):
                self.versions[quote.symbol] = version
                out.append((quote, raw))
        return out

    def note_gaps(self, symbols: Iterable[str]) -> None:
        self._gaps.note(symbols)

    async def fill_gaps(self, wanted: frozenset[str]) -> None:
        """Write the answer to the last gap snapshot, if it has come (never waits for one)."""
        snapshot = self._gaps.take()
        if snapshot is not None:
            fresh = self.newer(snapshot.quotes, wanted)
            store = self._store
            await self._with_redis("gap fill", lambda: store.write_snapshot(fresh, {}))
            self._counts["gap_fills"] += len(fresh)
