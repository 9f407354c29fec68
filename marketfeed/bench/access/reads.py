"""The three ways to read a quote, timed the same way: one client, one read after the other.

Each read asks for one symbol drawn from the cache's interest (the same draw for every path)
and is timed from before the call to its answer (HdrHistogram, ``common.metrics``). A read
that fails or comes back without the quote is counted, not timed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from common.cache.reader import QuoteReader
from common.cache.snapshots import SnapshotClient
from common.metrics import LatencyHistogram
from marketfeed.bench.access.results import HTTP, KAFKA, LIBRARY, PathResult

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


async def measure(path: str, read: Read, symbols: Sequence[str], warmup: int) -> PathResult:
    for symbol in symbols[:warmup]:
        await read(symbol)
    histogram = LatencyHistogram(resolution_us=1)
    samples: list[float] = []
    failed = 0
    began = time.perf_counter()
    for symbol in symbols:
        start = time.perf_counter()
        try:
            ok = await read(symbol)
        except httpx.HTTPError:
            ok = False
        if ok:
            samples.append(time.perf_counter() - start)
        else:
            failed += 1
    seconds = time.perf_counter() - began
    histogram.record_seconds(samples)
    return PathResult(path, len(symbols), seconds, histogram.percentiles().as_dict(), failed)


ORDER = (LIBRARY, KAFKA, HTTP)
