"""The Redis side of a quote cache: every write and the reads a consumer needs to resume.

Writes are batched: one MULTI/EXEC per fetched batch carries the quotes, the partition offsets
they came with, the freshness data and the counters, and reads back the cache's instance id.
That id is written once when a cache is initialised; if it is missing from a reply, the Redis
server lost its data (a restart without persistence) and the consumer must rebuild.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from common.cache.batch import PreparedBatch, Version
from common.cache.keys import CacheKeys
from common.errors import SchemaError
from common.generations.position import Position
from common.schema import Quote, decode_quote


class QuoteStore:
    def __init__(self, client: aioredis.Redis, keys: CacheKeys) -> None:
        self.client = client
        self.keys = keys
        self.instance = ""

    async def initialise(self, meta: Mapping[str, str | int]) -> bool:
        """Adopt the cache's instance id, creating it if the cache is new.

        Returns True if the cache already existed (its offsets and quotes can be resumed).
        """
        existing = await self.client.hget(self.keys.meta, "instance")
        self.instance = _text(existing) if existing else uuid.uuid4().hex
        await self.client.hset(
            self.keys.meta,
            mapping=_fields({**meta, "instance": self.instance, "started_ns": time.time_ns()}),
        )
        return existing is not None

    async def load_positions(self) -> dict[int, Position]:
        """Where each partition resumes: after the last record applied, in its generation."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.offsets)
        pipe.hgetall(self.keys.generations)
        offsets, generations = await pipe.execute()
        gens = {int(p): int(g) for p, g in generations.items()}
        return {int(p): Position(gens.get(int(p), 0), int(o) + 1) for p, o in offsets.items()}

    async def load_interest(self) -> frozenset[str]:
        members = await self.client.smembers(self.keys.interest)
        return frozenset(_text(m) for m in members)

    async def load_versions(self, symbols: Iterable[str]) -> dict[str, Version]:
        """(epoch, seq) of each cached quote among ``symbols``; a bad cached value is dropped."""
        names = list(symbols)
        if not names:
            return {}
        values = await self.client.mget([self.keys.quote(s) for s in names])
        out: dict[str, Version] = {}
        for symbol, value in zip(names, values, strict=True):
            if value is None:
                continue
            try:
                quote = decode_quote(_raw(value))
            except SchemaError:
                continue
            out[symbol] = (quote.epoch, quote.seq)
        return out

    async def apply(
        self,
        batch: PreparedBatch,
        high_watermarks: Mapping[int, int],
    ) -> bool:
        """Write one batch atomically; return False if the cache's instance id is gone."""
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        if batch.quotes:
            pipe.mset({k.quote(symbol): raw for symbol, (_, raw) in batch.quotes.items()})
        if batch.progress:
            _positions(pipe, k, {p: g.next for p, g in batch.progress.items()})
            pipe.hset(
                k.part_kts, mapping=_fields({p: g.kafka_ts_ms for p, g in batch.progress.items()})
            )
            quote_ts = {
                p: g.last_quote_ts_ns
                for p, g in batch.progress.items()
                if g.last_quote_ts_ns is not None
            }
            if quote_ts:
                pipe.hset(k.part_ts, mapping=_fields(quote_ts))
        if high_watermarks:
            pipe.hset(k.hw, mapping=_fields(high_watermarks))
        for name, count in batch.counts().items():
            if count:
                pipe.hincrby(k.stats, name, count)
        pipe.hset(k.meta, "heartbeat_ns", time.time_ns())
        pipe.hget(k.meta, "instance")
        results = await pipe.execute()
        return _text(results[-1]) == self.instance

    async def write_snapshot(
        self, quotes: Iterable[tuple[Quote, bytes]], positions: Mapping[int, Position]
    ) -> None:
        """Write snapshot quotes and the positions they stand at (partition -> next to read)."""
        items = {self.keys.quote(q.symbol): raw for q, raw in quotes}
        if not items and not positions:
            return
        pipe = self.client.pipeline(transaction=True)
        if items:
            pipe.mset(items)
        if positions:
            _positions(pipe, self.keys, positions)
        await pipe.execute()

    async def forget_partitions(self, partitions: Iterable[int]) -> None:
        fields = [str(p) for p in partitions]
        if fields:
            pipe = self.client.pipeline(transaction=True)
            for name in self.keys.partition_hashes:
                pipe.hdel(name, *fields)
            await pipe.execute()

    async def set_interest(
        self, interest: Iterable[str], evicted: Iterable[str], meta: Mapping[str, str | int]
    ) -> None:
        """Replace the interest set and drop the quotes of ``evicted``, atomically."""
        k = self.keys
        symbols = sorted(interest)
        gone = [k.quote(s) for s in evicted]
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(k.interest)
        if symbols:
            pipe.sadd(k.interest, *symbols)
        if gone:
            pipe.delete(*gone)
        pipe.hset(k.meta, mapping=_fields(meta))
        await pipe.execute()

    async def count(self, name: str, by: int = 1) -> None:
        """Add ``by`` to the counter ``name`` of the cache's stats."""
        await self.client.hincrby(self.keys.stats, name, by)

    async def heartbeat(self, high_watermarks: Mapping[int, int]) -> bool:
        """Say the consumer is alive (and what it saw); False if the instance id is gone."""
        pipe = self.client.pipeline(transaction=True)
        if high_watermarks:
            pipe.hset(self.keys.hw, mapping=_fields(high_watermarks))
        pipe.hset(self.keys.meta, "heartbeat_ns", time.time_ns())
        pipe.hget(self.keys.meta, "instance")
        results = await pipe.execute()
        return _text(results[-1]) == self.instance


def _positions(pipe: Any, keys: CacheKeys, positions: Mapping[int, Position]) -> None:
    """Queue the writes of ``positions``: the last offset applied (-1: none yet in the
    generation) and its generation, written together so neither is read without the other."""
    pipe.hset(keys.offsets, mapping=_fields({p: pos.last_read for p, pos in positions.items()}))
    pipe.hset(
        keys.generations, mapping=_fields({p: pos.generation for p, pos in positions.items()})
    )


def _fields(mapping: Mapping[Any, Any]) -> Any:
    """A hash mapping for redis-py, whose stubs want one exact key type; ints and strs are fine."""
    return {str(k): v for k, v in mapping.items()}


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
