"""Runs the access benchmark: servers, the feed, the cache, the API, then each phase.

One set of topics and processes for the whole run, each a child launched from its config
(``marketfeed.bench.core.children``): the publisher at ``--feed-rate``, the caching consumer
alone (``marketfeed.bench.access.cache``), the API (``python -m http_api``, pointed at that
cache as order_entry's) and, for the order phase, order_entry. Phases, in this order, on the
same quotes: the three read paths (with the cache's CPU and memory over the same window),
the orders (in-process baseline first, then HTTP), the SSE fan-out steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

import httpx

from common.cache.keys import CacheKeys
from common.cache.reader import QuoteReader
from common.cache.snapshots import SnapshotClient
from common.errors import RuntimeStartError
from common.kafka import KafkaSettings
from common.lifecycle import Lifecycle
from common.runtime import ChildProcess, free_port
from common.runtime.process import tcp_accepts
from common.watermarks import WatermarkReader
from feed_publisher.universe import universe
from http_api.config import ApiConfig
from http_api.kafkalink import KafkaLink
from http_api.orderdesk import OrderDesk
from marketfeed.bench.access import fanout, orders, reads
from marketfeed.bench.access.cache import CacheChildConfig
from marketfeed.bench.access.results import HTTP, KAFKA, LIBRARY, AccessResults, CacheCost
from marketfeed.bench.access.settings import AccessBenchConfig
from marketfeed.bench.core.children import child_env, cores, cpu_now, module_argv, rss_mb
from marketfeed.bench.core.clients import (
    feed_fields,
    feed_trust,
    kafka_fields,
    kafka_settings,
    open_producer,
)
from marketfeed.bench.core.feedcount import FeedCount
from marketfeed.bench.core.progress import Progress, StepProgress
from marketfeed.bench.core.servers import bench_servers, environment, feed_config, run_prefix
from marketfeed.bench.core.servers import log_dir as run_log_dir
from order_entry.config import OrderEntryConfig

CACHE = "cache"
HOST = "127.0.0.1"
_STOP_S = 10.0
_WARM_S = 5.0


async def _alive() -> bool:
    return True


class AccessEnv(Lifecycle):
    """The run's children and clients; ``stop()`` stops them in reverse order."""

    def __init__(
        self,
        config: AccessBenchConfig,
        kafka: KafkaSettings,
        redis_url: str,
        log_dir: Path,
        progress: Progress,
    ) -> None:
        self.config = config
        self.kafka = kafka
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.cache_prefix = f"{kafka.topic_prefix}cache:"
        self.fanout_prefix = f"{kafka.topic_prefix}fanout:"
        self.interest = universe(config.interest)
        self.children: dict[str, ChildProcess] = {}
        self.reader = QuoteReader.from_url(redis_url, prefix=self.cache_prefix)
        self.api_url = ""
        self.readable: list[str] = []  # the symbols the cache held once warm
        self.progress = progress

    async def _spawn(
        self,
        name: str,
        module: str,
        config: object,
        ready: Callable[[], Awaitable[bool]] = _alive,
    ) -> ChildProcess:
        proc = ChildProcess(
            name=name,
            argv=module_argv(module, config),
            ready=ready,
            log_path=self.log_dir / f"{name}.log",
            env=child_env(config),
            stop_timeout=_STOP_S,
            ready_timeout=30.0,
        )
        self.resources.push_async_callback(proc.stop)
        await proc.start()
        self.children[name] = proc
        return proc

    async def _start(self) -> None:
        c, kafka = self.config, self.kafka
        self.resources.push_async_callback(self.reader.stop)
        feed = feed_config(
            kafka, symbols=c.symbols, rate=c.feed_rate, seed=c.seed, log_level=c.log_level
        )
        self.progress("starting the publisher")
        publisher = await self._spawn("publisher", "feed_publisher", feed)
        async with WatermarkReader(kafka.bootstrap, connect_timeout=c.connect_timeout) as marks:
            count = FeedCount(kafka, marks)

            async def published() -> bool:
                return await count.sample() > 0

            await self.until(published, f"the publisher publishes (see {publisher.log_path})")
        cache = CacheChildConfig(
            **kafka_fields(kafka),
            **feed_fields(),
            redis_url=self.redis_url,
            redis_prefix=self.cache_prefix,
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            interest=c.interest,
            log_level=c.log_level,
        )
        self.progress("starting the caching consumer and the API")
        await self._spawn(CACHE, "marketfeed.bench.access.cache", cache)
        port = free_port(HOST)
        api = ApiConfig(
            **kafka_fields(kafka),
            port=port,
            order_entry_redis_url=self.redis_url,
            order_entry_redis_prefix=self.cache_prefix,
            portfolio_redis_url=self.redis_url,
            portfolio_redis_prefix=self.fanout_prefix,
            stream_max_rate=max(c.client_rate, 1.0),
            stream_max_clients=max(c.clients) + 10,
            log_level=c.log_level,
        )
        await self._spawn("api", "http_api", api, ready=lambda: tcp_accepts(HOST, port))
        self.api_url = f"http://{HOST}:{port}"
        self.progress("waiting until the cache holds the symbols of interest")
        with contextlib.suppress(RuntimeStartError):
            await self.until(self._warm, "the cache holds every symbol", timeout=_WARM_S)
        # A quiet symbol may not have been published yet: the reads pick among those cached.
        cached = await self.reader.get_many(self.interest)
        self.readable = [s for s, hit in cached.items() if hit is not None]
        if not self.readable:
            raise RuntimeStartError(f"the cache holds no quote after {_WARM_S:g}s")

    async def start_order_entry(self) -> None:
        c = self.config
        tradable = self.log_dir / "tradable.txt"
        tradable.write_text("\n".join(self.interest) + "\n")
        config = OrderEntryConfig(
            **kafka_fields(self.kafka),
            **feed_fields(),
            redis_url=self.redis_url,
            redis_prefix=f"{self.kafka.topic_prefix}oe:",
            tradable_file=tradable,
            session_timeout=2.0,  # its group join waits about half of it
            stale_after=60.0,
            log_level=c.log_level,
        )
        await self._spawn("order_entry", "order_entry", config)

    async def _warm(self) -> bool:
        got = await self.reader.get_many(self.interest)
        return all(v is not None for v in got.values())

    async def until(
        self, check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeStartError(f"bench access: timed out waiting until {what}")
            await asyncio.sleep(0.1)

    def check(self) -> None:
        for proc in self.children.values():
            if proc.returncode is not None:
                raise RuntimeStartError(
                    f"{proc.name} exited with code {proc.returncode} (see {proc.log_path})"
                )

    async def stop_child(self, name: str) -> None:
        proc = self.children.pop(name, None)
        if proc is not None:
            await proc.stop()

    def pid(self, name: str) -> int | None:
        proc = self.children.get(name)
        return proc.pid if proc else None


async def measure(config: AccessBenchConfig, progress: StepProgress) -> AccessResults:
    results = AccessResults(
        config=asdict(config), environment=environment(config, embedded_redis="embedded")
    )
    results.config["out"] = str(config.out) if config.out else None
    load_before = os.getloadavg()[0]
    prefix = run_prefix("access")
    async with contextlib.AsyncExitStack() as stack:
        log_dir = run_log_dir(stack, config.out, "access")
        servers = await stack.enter_async_context(
            bench_servers(
                bootstrap=config.bootstrap,
                redis_url=config.redis_url,
                services=(CACHE,),
                prefix=prefix,
                log_dir=log_dir,
                progress=progress.phase,
            )
        )
        kafka = kafka_settings(config, servers.bootstrap, prefix)
        results.environment.update(
            bootstrap=servers.bootstrap, topic_prefix=prefix, redis_url=servers.redis_urls[CACHE]
        )
        env = await stack.enter_async_context(
            AccessEnv(config, kafka, servers.redis_urls[CACHE], log_dir, progress.phase)
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=env.api_url,
                timeout=30,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            )
        )
        watermarks = await stack.enter_async_context(
            WatermarkReader(kafka.bootstrap, connect_timeout=config.connect_timeout)
        )
        producer = await open_producer(
            stack,
            bootstrap=kafka.bootstrap,
            client_id="bench-access",
            connect_timeout=config.connect_timeout,
        )
        snapshots = await stack.enter_async_context(
            SnapshotClient(kafka, producer, service="bench_access", trust=feed_trust())
        )
        redis_pid = servers.redis_pids.get(CACHE)
        feed = await stack.enter_async_context(FeedCount(kafka, watermarks))

        # Phase 1: the three read paths on the same draws; the cache's cost meanwhile.
        symbols = reads.draws(env.readable, config.reads, config.seed)
        warm = max(1, min(100, config.reads // 10))
        paths = {
            LIBRARY: reads.library(env.reader),
            KAFKA: reads.kafka(snapshots),
            HTTP: reads.http(http, "order_entry"),
        }
        pids = {"cache": env.pid(CACHE), "redis": redis_pid}
        before, fed, began = cpu_now(pids), await feed.sample(), time.monotonic()
        progress.phase("reads: the three paths taking turns")
        results.paths = await reads.measure({n: paths[n] for n in reads.ORDER}, symbols, warm)
        env.check()
        elapsed = time.monotonic() - began
        used = cores(before, cpu_now(pids), elapsed)
        results.cache = CacheCost(
            seconds=elapsed,
            feed_msgs_per_s=(await feed.sample() - fed) / elapsed,
            cores=used["cache"],
            rss_mb=rss_mb(env.pid(CACHE)),
            redis_cores=used.get("redis"),
        )
        progress.advance()

        # Phase 2: orders, in-process first (the baseline), then over HTTP.
        if config.orders > 0:
            progress.phase("orders: starting order_entry")
            await env.start_order_entry()
            link = await stack.enter_async_context(KafkaLink(kafka, orders_kept=10_000))
            desk = OrderDesk(link, timeout=orders.TIMEOUT_S)
            stack.push_async_callback(desk.close)
            await env.until(_ready(link), "the benchmark is connected to Kafka")
            # The first order waits for order_entry's group join: not measured.
            await orders.measure(desk, http, env.readable, 1)
            progress.phase("orders: in-process and over HTTP, taking turns")
            results.orders = await orders.measure(desk, http, env.readable, config.orders)
            # Its quote cache and faust app would take CPU from the fan-out's API.
            await env.stop_child("order_entry")
        progress.advance()

        # Phase 3: SSE fan-out steps, on quotes written by the benchmark (see fanout).
        streamed = env.interest[: config.client_symbols]
        writer = fanout.QuoteWriter(
            env.reader.client, CacheKeys(env.fanout_prefix), streamed, 2 * config.client_rate
        )
        await stack.enter_async_context(writer)
        for count in config.clients:
            progress.phase(f"fan-out: {count} clients")
            results.fanout.append(
                await fanout.step(
                    env.api_url,
                    clients=count,
                    symbols=streamed,
                    rate=config.client_rate,
                    warmup=config.warmup,
                    duration=config.duration,
                    api_pid=env.pid("api"),
                )
            )
            env.check()
            progress.advance()
        progress.phase("stopping")
    results.notes.append(
        "load average of the machine (1 min) at the start and the end: "
        f"{load_before:.1f}, {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs: every figure "
        "here shares them with whatever else runs)"
    )
    return results


def _ready(link: KafkaLink) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        return link.ready.is_set()

    return ready
