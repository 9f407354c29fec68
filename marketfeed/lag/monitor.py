"""Taking the samples of ``marketfeed lag``: each cache's Redis and its broker (the I/O part).

For each target: the broker's exact high watermarks of the cache's topic
(``common/watermarks.py``; never the cache's own view of them, never the committed offset) are
read first, then the cache's partition states, heartbeat and the ages of its symbols of
interest. The samples are judged by ``marketfeed.lag.rules``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.cache.reader import QuoteReader
from common.lifecycle import Lifecycle
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

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.lag.as_dict(),
            "redis_url": self.target.redis_url,
            "redis_prefix": self.target.redis_prefix,
            "bootstrap": self.target.bootstrap,
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

    async def _start(self) -> None:
        for target in self.targets:
            reader = QuoteReader.from_url(target.redis_url, prefix=target.redis_prefix)
            self.resources.push_async_callback(reader.aclose)
            self._caches.append(reader)
        for bootstrap in dict.fromkeys(t.bootstrap for t in self.targets):
            broker = WatermarkReader(bootstrap, connect_timeout=self._connect_timeout)
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
        marks: dict[tuple[str, str, int], int] = {}
        for bootstrap, broker in self._brokers.items():
            wanted = {
                topic
                for target, meta, topic in zip(self.targets, metas, topics, strict=True)
                if meta and target.bootstrap == bootstrap
            }
            if wanted:
                found = await broker.high_watermarks(sorted(wanted))
                marks |= {(bootstrap, tp.topic, tp.partition): hw for tp, hw in found.items()}
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
        marks: dict[tuple[str, str, int], int],
    ) -> CacheSample:
        label = _label(target, meta)
        if not meta:
            return CacheSample(service=label, began_ns=began, now_ns=time.time_ns(), has_meta=False)
        states = await cache.partitions()
        interest = sorted(await cache.interest())
        cached = await cache.get_many(interest)
        meta = await cache.meta()  # again: the heartbeat as of now, not before the watermarks
        now = time.time_ns()
        # The latest sign of life: a restarted consumer writes started_ns before its first beat.
        beats = [int(meta[k]) for k in ("heartbeat_ns", "started_ns") if meta.get(k)]
        return CacheSample(
            service=label,
            began_ns=began,
            now_ns=now,
            heartbeat_ns=max(beats) if beats else None,
            partitions={
                p: PartitionSample(
                    partition=p,
                    high_watermark=marks.get((target.bootstrap, topic, p), 0),
                    applied_offset=s.applied_offset,
                    quote_ts_ns=s.quote_ts_ns,
                    kafka_ts_ms=s.kafka_ts_ms,
                )
                for p, s in states.items()
            },
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
            Report(target, self.tracker.update(sample))
            for target, sample in zip(self.targets, samples, strict=True)
        ]

    async def measure(self, interval: float = 1.0) -> list[Report]:
        """A report from two samples ``interval`` apart (rates and stalls need two)."""
        await self.update()
        await asyncio.sleep(interval)
        return await self.update()


def _label(target: Target, meta: dict[str, str]) -> str:
    if target.service != ALL_SERVICES:
        return target.service
    return meta.get("service") or "cache"
