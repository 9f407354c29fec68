"""One set of topics of the orders benchmark and the processes that live on it.

An OrderEnv owns a topic prefix (``md.*`` and ``orders.*`` of order_entry, ``echo.orders.*`` of
the baseline) and, as child processes (``common.runtime.ChildProcess``: a log file each, killed
by the kernel if the benchmark dies): the publisher (``python -m feed_publisher``), the
order_entry processes (``python -m order_entry``) and the echo baseline
(``python -m marketfeed.bench.orders.echo``). It also owns the two order drivers and a watermark
reader of the quote topic. ``stop()`` stops all of it in reverse order; it is safe to call twice.

Each child is launched from its config (PublisherConfig, OrderEntryConfig, EchoConfig) built
here, every setting a flag, with the environment without ``MARKETFEED_*``, so that nothing in
the user's shell quietly changes what is measured (marketfeed.bench.core.children).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from common.cache.keys import CacheKeys
from common.errors import RuntimeStartError
from common.generations.naming import GenerationWatch
from common.generations.position import Position, offset_lag, partition_ends
from common.kafka import TopicSpec, ensure_topics
from common.lifecycle import Lifecycle
from common.runtime import ChildProcess
from common.watermarks import WatermarkReader
from marketfeed.bench.core.children import cpu_now, spawn
from marketfeed.bench.core.clients import feed_fields, kafka_fields, kafka_settings
from marketfeed.bench.core.servers import feed_config
from marketfeed.bench.orders.driver import OrderDriver
from marketfeed.bench.orders.echo import EchoConfig
from marketfeed.bench.orders.settings import OrdersBenchConfig
from order_entry.config import OrderEntryConfig

ORDER_ENTRY = "order_entry"
ECHO = "echo"
ECHO_MODULE = "marketfeed.bench.orders.echo"
# The order_entry processes: the one every step runs on, and the one that joins it.
FIRST, SECOND = "oe1", "oe2"
# A clean stop of order_entry takes about a second (faust leaves the group), of the publisher
# and the echo less; past these they are killed (e.g. the broker is gone: Ctrl-C reaches it too).
_STOP_TIMEOUT_S = 10.0
_QUICK_STOP_S = 5.0
_PUBLISHER_START_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What every OrderEnv of one run shares."""

    config: OrdersBenchConfig
    bootstrap: str
    redis_url: str
    log_dir: Path
    tradable: tuple[str, ...]
    tradable_file: Path
    servers: dict[str, int | None]  # pids of the embedded servers, for their CPU


@dataclass(slots=True)
class Spawned:
    proc: ChildProcess
    wall_ns: int  # time.time_ns() at spawn: order_entry's orders:meta times are wall clock
    at: float  # time.monotonic() at spawn

    def mono(self, wall_ns: int) -> float:
        """A wall-clock time of this host as time.monotonic()."""
        return self.at + (wall_ns - self.wall_ns) / 1e9


class OrderEnv(Lifecycle):
    def __init__(self, ctx: RunContext, prefix: str, name: str) -> None:
        c = ctx.config
        self.ctx = ctx
        self.prefix = prefix
        self.name = name
        self.kafka = kafka_settings(c, ctx.bootstrap, prefix)
        self.echo_kafka = kafka_settings(c, ctx.bootstrap, f"{prefix}echo.")
        self.drivers = {
            target: OrderDriver(
                bootstrap=ctx.bootstrap,
                topics=kafka.topics,
                partitions=c.partitions,
                symbols=ctx.tradable,
                fetch_max_wait_ms=c.fetch_max_wait_ms,
                connect_timeout=c.connect_timeout,
            )
            for target, kafka in ((ORDER_ENTRY, self.kafka), (ECHO, self.echo_kafka))
        }
        self.watermarks = WatermarkReader(ctx.bootstrap, connect_timeout=c.connect_timeout)
        self.redis = aioredis.Redis.from_url(ctx.redis_url, socket_connect_timeout=2)
        self.publisher: ChildProcess | None = None
        self.processes: dict[str, ChildProcess] = {}
        self.feed = GenerationWatch()

    def redis_prefix(self, process: str) -> str:
        return f"{self.prefix}{process}:"

    async def _start(self) -> None:
        # The market-data topics are the publisher's to create (which ones: its --md-history).
        specs: list[TopicSpec] = []
        for kafka in (self.kafka, self.echo_kafka):
            topics = kafka.topics
            specs += [
                TopicSpec(topics.orders_commands, kafka.partitions),
                TopicSpec(topics.orders_events, kafka.partitions),
            ]
        await ensure_topics(self.kafka, specs)
        self.resources.push_async_callback(self.redis.aclose)
        await self.resources.enter_async_context(self.watermarks)
        for driver in self.drivers.values():
            await self.resources.enter_async_context(driver)
            driver.pause()
        c = self.ctx.config
        feed = feed_config(
            self.kafka, symbols=c.symbols, rate=c.quote_rate, seed=c.seed, log_level=c.log_level
        )
        self.publisher = await self._spawn(
            "publisher", "feed_publisher", feed, stop_timeout=_QUICK_STOP_S
        )
        await self._wait_for_quotes(self.publisher)

    async def _spawn(
        self, role: str, module: str, config: Any, *, stop_timeout: float = _STOP_TIMEOUT_S
    ) -> ChildProcess:
        """Start ``python -m module`` with ``config``; it is stopped with this env."""
        return await spawn(
            self.resources,
            name=f"{role} ({self.name})",
            module=module,
            config=config,
            log_path=self.ctx.log_dir / f"{self.name}-{role}.log",
            stop_timeout=stop_timeout,
        )

    async def _wait_for_quotes(self, publisher: ChildProcess) -> None:
        deadline = time.monotonic() + self.ctx.config.connect_timeout + _PUBLISHER_START_S
        while not _current(await self.quote_marks()):
            if publisher.returncode is not None or time.monotonic() > deadline:
                raise RuntimeStartError(
                    f"the publisher published no quote (see {publisher.log_path})"
                )
            await asyncio.sleep(0.1)

    async def quote_marks(self) -> dict[tuple[int, int], int]:
        """(generation, partition) -> high watermark of the quotes; ``self.feed`` counts what
        was published across generations."""
        marks = await self.watermarks.generation_marks(self.kafka.topics.quotes)
        self.feed.update(marks)
        return marks

    async def cache_lag(
        self, process: str, marks: dict[tuple[int, int], int]
    ) -> tuple[int, float] | None:
        """How far ``process``'s quote cache is behind the feed: records waiting on its
        partitions, across generations, and the time lag of the worst one (now - Kafka
        timestamp of the last record it applied; 0 where nothing waits). None before it wrote
        any."""
        keys = CacheKeys(self.redis_prefix(process))
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.offsets)
        pipe.hgetall(keys.generations)
        pipe.hgetall(keys.part_kts)
        offsets, generations, stamps = await pipe.execute()
        if not offsets:
            return None
        now_ms = time.time_ns() / 1e6
        records, seconds = 0, 0.0
        for key, value in offsets.items():
            partition = int(key)
            position = Position(int(generations.get(key, 0)), int(value) + 1)
            waiting = offset_lag(position, partition_ends(marks, partition))
            records += waiting
            stamp = stamps.get(key)
            if waiting and stamp is not None:
                seconds = max(seconds, (now_ms - int(stamp)) / 1000)
        return records, seconds

    async def spawn_order_entry(self, process: str, *, ledger: str) -> Spawned:
        """Start an order_entry process with its own quote cache, sharing ``ledger``'s."""
        c = self.ctx.config
        config = OrderEntryConfig(
            **kafka_fields(self.kafka),
            **feed_fields(),
            log_level=c.log_level,
            redis_url=self.ctx.redis_url,
            redis_prefix=self.redis_prefix(process),
            # One ledger for the group: a duplicate is recognised whichever process owns it.
            ledger_prefix=self.redis_prefix(ledger),
            tradable_file=self.ctx.tradable_file,
            rebalance_timeout=c.rebalance_timeout,
        )
        wall, at = time.time_ns(), time.monotonic()
        proc = await self._spawn(process, "order_entry", config)
        self.processes[process] = proc
        return Spawned(proc, wall, at)

    async def spawn_echo(self) -> Spawned:
        c = self.ctx.config
        config = EchoConfig(
            **kafka_fields(self.echo_kafka),
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            log_level=c.log_level,
        )
        wall, at = time.time_ns(), time.monotonic()
        proc = await self._spawn(ECHO, ECHO_MODULE, config, stop_timeout=_QUICK_STOP_S)
        self.processes[ECHO] = proc
        return Spawned(proc, wall, at)

    async def stop_process(self, process: str) -> None:
        proc = self.processes.pop(process, None)
        if proc is not None:
            await proc.stop()

    def check(self) -> None:
        """Raise if a child process this env still counts on has exited."""
        for proc in [self.publisher, *self.processes.values()]:
            if proc is not None and proc.returncode is not None:
                raise RuntimeStartError(
                    f"{proc.name} exited with code {proc.returncode} (see {proc.log_path})"
                )

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds used so far by the benchmark, the servers and this env's children."""
        pids: dict[str, int | None] = {"bench": os.getpid(), **self.ctx.servers}
        if self.publisher is not None:
            pids["publisher"] = self.publisher.pid
        pids.update({name: proc.pid for name, proc in self.processes.items()})
        return cpu_now(pids)

    async def stop(self) -> None:
        """Stop the children, drivers and clients in reverse order. Safe to call twice."""
        # The consumers of orders first and together: each takes about a second to leave.
        await asyncio.gather(*(proc.stop() for proc in self.processes.values()))
        await super().stop()
        self.processes.clear()
        self.publisher = None


def _current(marks: dict[tuple[int, int], int]) -> int:
    """Records in the newest generation (rollover markers live only in older ones)."""
    newest = max((g for g, _ in marks), default=0)
    return sum(high for (g, _), high in marks.items() if g == newest)
