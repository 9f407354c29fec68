"""Reading a quote cache: the library call behind ``marketfeed quote`` and the lag monitor.

Reads only; the service that owns the cache is the only writer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis

from common.cache.keys import CacheKeys
from common.errors import CacheUnavailableError, SchemaError
from common.lifecycle import Lifecycle
from common.redisconn import UNAVAILABLE, client_url, problem
from common.schema import Quote, decode_quote


@dataclass(frozen=True, slots=True)
class CachedQuote:
    quote: Quote
    age_s: float  # now - publish time
    stale: bool


@dataclass(frozen=True, slots=True)
class PartitionState:
    partition: int
    applied_offset: int | None  # offset of the last record applied (-1: none yet in generation)
    quote_ts_ns: int | None  # publish time of the last quote applied
    kafka_ts_ms: int | None  # Kafka timestamp of the last record applied
    high_watermark: int | None  # as seen by the cache's last fetch
    generation: int = 0  # of the applied offset (common.generations; 0: the plain topic)


T = TypeVar("T")


def _int(value: bytes | str | None) -> int | None:
    return int(value) if value is not None else None


class QuoteReader(Lifecycle):
    def __init__(
        self, client: aioredis.Redis, keys: CacheKeys, *, stale_after: float = 5.0
    ) -> None:
        self.client = client
        self.keys = keys
        self.stale_after = stale_after

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "mf:", stale_after: float = 5.0) -> QuoteReader:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        return cls(client, CacheKeys(prefix), stale_after=stale_after)

    async def _start(self) -> None:
        """Nothing to open: redis-py connects on the first command."""

    async def stop(self) -> None:
        await self.client.aclose()

    aclose = stop

    async def get(self, symbol: str) -> CachedQuote | None:
        return (await self.get_many([symbol]))[symbol]

    async def get_many(self, symbols: Iterable[str]) -> dict[str, CachedQuote | None]:
        """The cached quote of each symbol (None where there is none), with its age."""
        names = list(dict.fromkeys(symbols))
        if not names:
            return {}
        values = await self._call(self.client.mget([self.keys.quote(s) for s in names]))
        now = time.time_ns()
        out: dict[str, CachedQuote | None] = {}
        for symbol, value in zip(names, values, strict=True):
            out[symbol] = self._cached(value, now) if value is not None else None
        return out

    def _cached(self, value: bytes | str, now_ns: int) -> CachedQuote | None:
        try:
            quote = decode_quote(value if isinstance(value, bytes) else value.encode())
        except SchemaError:
            return None
        age = max(0.0, (now_ns - quote.ts_ns) / 1e9)
        return CachedQuote(quote=quote, age_s=age, stale=age > self.stale_after)

    async def interest(self) -> frozenset[str]:
        members = await self._call(self.client.smembers(self.keys.interest))
        return frozenset(m.decode() if isinstance(m, bytes) else m for m in members)

    async def meta(self) -> dict[str, str]:
        return _decode_hash(await self._call(self.client.hgetall(self.keys.meta)))

    async def stats(self) -> dict[str, int]:
        raw = _decode_hash(await self._call(self.client.hgetall(self.keys.stats)))
        return {k: int(v) for k, v in raw.items()}

    async def partitions(self) -> dict[int, PartitionState]:
        """What the cache has applied, per quote partition it is (or was last) assigned."""
        pipe = self.client.pipeline(transaction=True)
        for name in self.keys.partition_hashes:
            pipe.hgetall(name)
        offsets, gens, part_ts, part_kts, hw = [
            _decode_hash(h) for h in await self._call(pipe.execute())
        ]
        assigned = (await self.meta()).get("assigned", "")
        numbers = {int(p) for p in assigned.split(",") if p} | {int(p) for p in offsets}
        return {
            p: PartitionState(
                partition=p,
                applied_offset=_int(offsets.get(str(p))),
                quote_ts_ns=_int(part_ts.get(str(p))),
                kafka_ts_ms=_int(part_kts.get(str(p))),
                high_watermark=_int(hw.get(str(p))),
                generation=_int(gens.get(str(p))) or 0,
            )
            for p in sorted(numbers)
        }

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except UNAVAILABLE as exc:
            raise CacheUnavailableError(
                f"cannot read the cache: {problem(client_url(self.client), exc)}"
            ) from None


def _decode_hash(raw: Any) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
