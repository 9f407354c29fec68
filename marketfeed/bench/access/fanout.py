"""SSE fan-out: how many stream clients at ``--client-rate`` updates a second the API serves.

Each step opens that many streams of ``GET /v1/stream/quotes`` (the same symbols, the same
max_rate) from this process, lets them settle for ``--warmup``, then counts the events every
client receives over ``--duration`` and the CPU the API's process used meanwhile. The reader
counts events by their blank-line ends and parses nothing, so that it costs this process as
little as it can. Past saturation the per-client rate falls below what was asked.

What the streams carry is written by :class:`QuoteWriter` into a cache of its own (the API's
"portfolio" here), each symbol updated twice as often as a client asks: the figure is the
API's fan-out, and must not depend on how well the broker and the caching consumer keep up
on a loaded machine (the API reads a cache the same way whoever writes it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

import redis.asyncio as aioredis

from common.cache.keys import CacheKeys
from common.lifecycle import Lifecycle, cancel_all
from common.schema import Quote
from marketfeed.bench.access.results import FanoutStep
from marketfeed.bench.core.children import cores, cpu_now

# The API's cache the writer fills: the bench runs no portfolio.
SERVICE = "portfolio"


class QuoteWriter(Lifecycle):
    """Writes a new quote of each symbol ``rate`` times a second into a cache's keys."""

    def __init__(
        self, client: aioredis.Redis, keys: CacheKeys, symbols: Sequence[str], rate: float
    ):
        self.client, self.keys, self.symbols, self.rate = client, keys, list(symbols), rate
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        await self.client.sadd(self.keys.interest, *self.symbols)
        self._task = asyncio.create_task(self._run(), name="bench-access-writer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_all([task] if task else [])
        await super().stop()

    async def _run(self) -> None:
        seq, epoch = 0, time.time_ns() // 1_000_000
        while True:
            seq += 1
            now = time.time_ns()
            pipe = self.client.pipeline(transaction=False)
            for i, symbol in enumerate(self.symbols):
                bid = 100.0 + i + (seq % 50) / 100
                quote = Quote(
                    symbol=symbol,
                    epoch=epoch,
                    seq=seq,
                    ts_ns=now,
                    bid=bid,
                    ask=bid + 0.05,
                    bid_size=100,
                    ask_size=100,
                )
                pipe.set(self.keys.quote(symbol), quote.encode())
            await pipe.execute()
            await asyncio.sleep(1.0 / self.rate)


class _Counter:
    def __init__(self) -> None:
        self.events = 0


async def _follow(host: str, port: int, target: str, counter: _Counter) -> None:
    """One stream over a plain socket: HTTP/1.1 by hand, events counted by their ends. (An
    HTTP client library in this process became the bottleneck at a few hundred streams.)"""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        while data := await reader.read(65536):
            counter.events += data.count(b"\n\n")
    finally:
        writer.close()


async def step(
    base_url: str,
    *,
    clients: int,
    symbols: Sequence[str],
    rate: float,
    warmup: float,
    duration: float,
    api_pid: int | None,
) -> FanoutStep:
    query = urlencode({"symbols": ",".join(symbols), "max_rate": rate, "service": SERVICE})
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    counters = [_Counter() for _ in range(clients)]
    tasks = [
        asyncio.create_task(_follow(host, port, f"/v1/stream/quotes?{query}", c)) for c in counters
    ]
    try:
        await asyncio.sleep(warmup)
        pids = {"api": api_pid, "bench": os.getpid()}
        before, events_before, began = (
            cpu_now(pids),
            sum(c.events for c in counters),
            time.monotonic(),
        )
        await asyncio.sleep(duration)
        elapsed = time.monotonic() - began
        used = cores(before, cpu_now(pids), elapsed)
        events = sum(c.events for c in counters) - events_before
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await cancel_all(tasks)
    return FanoutStep(
        clients=clients,
        seconds=elapsed,
        events=events,
        per_client_rate=events / elapsed / clients,
        api_cores=used["api"],
        bench_cores=used["bench"],
    )
