"""The three ways to read a quote, timed the same way: one client, one read after the other.

Each read asks for one symbol drawn from the cache's interest (the same draws for every path,
the paths taking turns) and is timed from before the call to its answer (HdrHistogram,
``common.metrics``). A read that fails or comes back without the quote is counted, not timed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

import httpx

from common.cache.reader import QuoteReader
from common.cache.snapshots import SnapshotClient
from marketfeed.bench.access.results import HTTP, KAFKA, LIBRARY, PathResult
from marketfeed.bench.access.timer import Timer

Read = Callable[[str], Awaitable[bool]]  # True when the quote came back
SNAPSHOT_TIMEOUT_S = 5.0


def draws(symbols: Sequence[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(symbols) for _ in range(count)]


def library(reader: QuoteReader) -> Read:
    async def read(symbol: str) -> bool:
        return await reader.get(symbol) is not None

    return read


def kafka(client: SnapshotClient) -> Read:
    async def read(symbol: str) -> bool:
        snapshot = await client.request([symbol], SNAPSHOT_TIMEOUT_S)
        return snapshot is not None and bool(snapshot.quotes)

    return read


def http(client: httpx.AsyncClient, service: str) -> Read:
    async def read(symbol: str) -> bool:
        r = await client.get("/v1/quotes", params={"symbols": symbol, "service": service})
        return r.status_code == 200 and "bid" in r.json()["quotes"][0]

    return read


async def measure(paths: dict[str, Read], symbols: Sequence[str], warmup: int) -> list[PathResult]:
    """Every path reads every symbol, the paths taking turns read by read, so that each sees
    the same quotes and the same moment of a shared, noisy machine."""
    for symbol in symbols[:warmup]:
        for read in paths.values():
            await read(symbol)
    timers = {name: Timer(resolution_us=1) for name in paths}
    for symbol in symbols:
        for name, read in paths.items():
            await timers[name].time(_ok(read, symbol))
    return [
        PathResult(name, len(symbols), t.seconds, t.percentiles(), t.failed)
        for name, t in timers.items()
    ]


async def _ok(read: Read, symbol: str) -> bool:
    try:
        return await read(symbol)
    except httpx.HTTPError:
        return False


ORDER = (LIBRARY, KAFKA, HTTP)
