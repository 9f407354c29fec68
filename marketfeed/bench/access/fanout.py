"""SSE fan-out: how many stream clients at ``--client-rate`` updates a second the API serves.

Each step opens that many streams of ``GET /v1/stream/quotes`` (the same symbols, the same
max_rate) from this process, lets them settle for ``--warmup``, then counts the events every
client receives over ``--duration`` and the CPU the API's process used meanwhile. The reader
counts events by their blank-line ends and parses nothing, so that it costs this process as
little as it can. Past saturation the per-client rate falls below what was asked.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import httpx

from common.lifecycle import cancel_all
from marketfeed.bench.access.results import FanoutStep
from marketfeed.bench.core.children import cores, cpu_now


class _Counter:
    def __init__(self) -> None:
        self.events = 0


async def _follow(client: httpx.AsyncClient, params: dict[str, str], counter: _Counter) -> None:
    async with client.stream("GET", "/v1/stream/quotes", params=params) as r:
        async for chunk in r.aiter_bytes():
            counter.events += chunk.count(b"\n\n")


async def step(
    client: httpx.AsyncClient,
    *,
    clients: int,
    symbols: Sequence[str],
    rate: float,
    warmup: float,
    duration: float,
    api_pid: int | None,
) -> FanoutStep:
    params = {"symbols": ",".join(symbols), "max_rate": str(rate)}
    counters = [_Counter() for _ in range(clients)]
    tasks = [asyncio.create_task(_follow(client, params, c)) for c in counters]
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
