"""Taking the samples of ``marketfeed lag``: each cache's Redis and its broker (the I/O part).

For each target: the broker's exact high watermarks of every generation of the cache's topic
(``common/watermarks.py``; never the cache's own view of them, never the committed offset) are
read first, then the cache's partition states (applied offset and its generation), heartbeat
and the ages of its symbols of interest. Offset lag across generations is the rest of the
cache's generation plus every later one (``common.generations.position``); the sample gives the
rules a partition's high watermark as where its end would be in the cache's generation had it
not rolled (the cache's position plus that lag), so the rules need not know about generations.
The samples are judged by ``marketfeed.lag.rules``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.cache.reader import PartitionState, QuoteReader
from common.generations.position import Position, offset_lag, partition_ends
from common.lifecycle import Lifecycle
from common.logs import redact_url
from common.topics import Topics
from common.watermarks import WatermarkReader
from marketfeed.lag.rules import LagTracker, ServiceLag, Thresholds
from marketfeed.lag.sample import CacheSample, PartitionSample, worst_fresh
from marketfeed.targets import ALL_SERVICES, Target


@dataclass(frozen=True, slots=True)
class Report:
    """What one look found for one cache, with where the cache is."""

    target: Target
    lag: ServiceLag
    generations: dict[int, int] = field(default_factory=dict)  # partition -> the cache's
    newest: int | None = None  # the newest generation on the broker

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.lag.as_dict(),
            "redis_url": redact_url(self.target.redis_url),
            "redis_prefix": self.target.redis_prefix,
            "bootstrap": self.target.bootstrap,
            "newest_generation": self.newest,
            "generations": {str(p): g for p, g in sorted(self.generations.items())},
        }


class LagMonitor(Lifecycle):
    """Samples each target's cache and its broker; judges the samples with a LagTracker.

    Owns the connections it opens: ``start()`` connects to the brokers (with backoff, for
    ``connect_timeout``), ``stop()`` closes everything and is safe to call twice.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        thresholds: Thresholds | None = None,
        worst: int = 5,
        connect_timeout: float = 5.0,
    ) -> None:
        self.targets = list(targets)
        self.tracker = LagTracker(thresholds)
        self.worst = worst
        self._connect_timeout = connect_timeout
        self._caches: list[QuoteReader] = []
        self._brokers: dict[str, WatermarkReader] = {}
        # What the last sample found of each target: the cache's generation per partition,
        # and the newest generation on the broker.
        self._generations: list[tuple[dict[int, int], int | None]] = []

    async def _start(self) -> None:
        for target in self.targets:
            reader = QuoteReader.from_url(target.redis_url, prefix=target.redis_prefix)
            self.resources.push_async_callback(reader.aclose)
            self._caches.append(reader)
        for target in {t.bootstrap: t for t in self.targets}.values():
            bootstrap = target.bootstrap
            broker = WatermarkReader(
                bootstrap, connect_timeout=self._connect_timeout, security=target.security
            )
            self._brokers[bootstrap] = await self.resources.enter_async_context(broker)

    async def stop(self) -> None:
        self._caches.clear()
        self._brokers.clear()
        await super().stop()

    async def sample(self) -> list[CacheSample]:
        """One look at every cache; the broker's watermarks are read before the caches."""
        if not self._caches:
            raise RuntimeError("LagMonitor not started")
        metas = [await cache.meta() for cache in self._caches]
        topics = [
            meta.get("topic") or Topics(prefix=target.topic_prefix).quotes
            for target, meta in zip(self.targets, metas, strict=True)
        ]
        began = time.time_ns()
        marks: dict[tuple[str, str], dict[tuple[int, int], int]] = {}
        for bootstrap, broker in self._brokers.items():
            wanted = {
                topic
                for target, meta, topic in zip(self.targets, metas, topics, strict=True)
                if meta and target.bootstrap == bootstrap
            }
            for topic in sorted(wanted):
                marks[(bootstrap, topic)] = await broker.generation_marks(topic)
        self._generations = []
        samples = []
        for target, cache, meta, topic in zip(
            self.targets, self._caches, metas, topics, strict=True
        ):
            samples.append(await self._sample_one(target, cache, meta, topic, began, marks))
        return samples

    async def _sample_one(
        self,
        target: Target,
        cache: QuoteReader,
        meta: dict[str, str],
        topic: str,
        began: int,
        marks: dict[tuple[str, str], dict[tuple[int, int], int]],
    ) -> CacheSample:
        label = _label(target, meta)
        found = marks.get((target.bootstrap, topic), {})
        newest = max((g for g, _ in found), default=None)
        if not meta:
            self._generations.append(({}, newest))
            return CacheSample(service=label, began_ns=began, now_ns=time.time_ns(), has_meta=False)
        states = await cache.partitions()
        interest = sorted(await cache.interest())
        cached = await cache.get_many(interest)
        meta = await cache.meta()  # again: the heartbeat as of now, not before the watermarks
        now = time.time_ns()
        # The latest sign of life: a restarted consumer writes started_ns before its first beat.
        beats = [int(meta[k]) for k in ("heartbeat_ns", "started_ns") if meta.get(k)]
        self._generations.append(({p: s.generation for p, s in states.items()}, newest))
        return CacheSample(
            service=label,
            began_ns=began,
            now_ns=now,
            heartbeat_ns=max(beats) if beats else None,
            partitions={p: _partition(s, partition_ends(found, p)) for p, s in states.items()},
            interest_count=len(interest),
            worst_fresh=worst_fresh(
                {s: (hit.age_s if hit is not None else None) for s, hit in cached.items()},
                self.worst,
            ),
        )

    async def update(self) -> list[Report]:
        """Take a sample of every cache and judge it against the previous one."""
        samples = await self.sample()
        return [
            Report(target, self.tracker.update(sample), generations=generations, newest=newest)
            for target, sample, (generations, newest) in zip(
                self.targets, samples, self._generations, strict=True
            )
        ]

    async def measure(self, interval: float = 1.0) -> list[Report]:
        """A report from two samples ``interval`` apart (rates and stalls need two)."""
        await self.update()
        await asyncio.sleep(interval)
        return await self.update()


def _partition(state: PartitionState, ends: dict[int, int]) -> PartitionSample:
    """One partition's sample, its high watermark as seen from the cache's generation."""
    applied = state.applied_offset
    position = Position(state.generation, 0 if applied is None else applied + 1)
    return PartitionSample(
        partition=state.partition,
        high_watermark=position.offset + offset_lag(position, ends),
        applied_offset=applied,
        quote_ts_ns=state.quote_ts_ns,
        kafka_ts_ms=state.kafka_ts_ms,
    )


def _label(target: Target, meta: dict[str, str]) -> str:
    if target.service != ALL_SERVICES:
        return target.service
    return meta.get("service") or "cache"
