"""``marketfeed bench metrics``: what Prometheus metrics cost the hot paths, on vs off.

In one invocation, on the same broker, each round measures four runs, each on topics of its own
and the order of "off" and "on" swapped every round:

- publisher off / on: the real publisher, unthrottled for ``--duration`` seconds, acknowledged
  msg/s; "on" serves /metrics and is scraped every ``--scrape-every`` seconds meanwhile (far more
  often than Prometheus's usual 15 s, to make the cost show);
- cache off / on: a caching consumer of every symbol replaying the backlog the publisher run
  left (no snapshot responder: it replays from the start), records read per second until it
  reached the end; "on" has the e2e histogram hook on every applied batch, serves /metrics and
  is scraped as above.

The figures: the ratio on / off of each rate (median over the rounds), and, of the "on" runs,
the share of the run's wall time its process spent on metrics (the cache's hook and the
publisher's lateness histogram, timed around each call; the scrapes, as many as were made
times what one takes to collect and format). On a shared, loaded machine the ratio carries the
noise of the machine; the share is the cost.

The command line imports this module to build its parser: what measuring needs is imported by
the functions that measure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from common.cli import EXIT_OK
from common.config import add_arguments, build, known_log_level, positive, setting
from common.lifecycle import cancel_and_wait
from common.logs import setup_logging
from marketfeed.bench.core.report import table

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import numpy.typing as npt
    from prometheus_client import CollectorRegistry

    from common.cache.batch import PreparedBatch
    from common.exposition import MetricsServer
    from common.kafka import KafkaSettings

SERVICE = "bench_metrics"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsBenchConfig:
    symbols: int = setting(500, help="simulated symbols (the cache follows every one)")
    duration: float = setting(5.0, help="seconds each publisher run lasts", check=positive)
    rounds: int = setting(3, help="rounds of off/on pairs (order swapped each round)")
    scrape_every: float = setting(
        0.5, help="seconds between scrapes of /metrics in the 'on' runs", check=positive
    )
    partitions: int = setting(16, help="partitions of the topics", check=positive)
    log_level: str = setting("WARNING", help="log level", check=known_log_level)


@dataclass(frozen=True, slots=True)
class Run:
    what: str  # publisher | cache
    metrics: bool
    rate: float  # msg/s acknowledged, or records/s read
    scrapes: int
    # Of the run's wall time, the share its process spent on metrics (the cache's hook, and
    # formatting the scrapes): the cost itself, where the rates' ratio is blurred by noise.
    share: float = 0.0


async def _publisher(settings: KafkaSettings, config: MetricsBenchConfig, on: bool) -> Run:
    from feed_publisher.publisher import Publisher  # noqa: PLC0415 - see the docstring
    from marketfeed.bench.core.servers import feed_config  # noqa: PLC0415

    feed = feed_config(
        settings, symbols=config.symbols, rate=None, seed=1, duration=config.duration
    )
    # One plain topic (retention): the cache run after it knows where the end is.
    feed = replace(feed, md_history="retention", metrics_port="0" if on else "off", snapshots=False)
    publisher = Publisher(feed)
    # Its one observation on the publishing path, timed around each call.
    observe, observing = publisher.lateness_buckets.observe, 0.0

    def timed(seconds: npt.ArrayLike) -> None:
        nonlocal observing
        begun = time.perf_counter()
        observe(seconds)
        observing += time.perf_counter() - begun

    publisher.lateness_buckets.observe = timed  # type: ignore[method-assign]
    async with publisher, _scraping(publisher.metrics_server, config) as scrapes:
        started = time.monotonic()
        await publisher.run(asyncio.Event())
        await publisher.sink.flush()
        elapsed = time.monotonic() - started
        spent = observing + (scrapes() * _scrape_cost(publisher.registry) if on else 0.0)
    rate = publisher.stats().acked / elapsed
    return Run("publisher", on, rate, scrapes(), spent / elapsed)


async def _cache(
    settings: KafkaSettings, redis_url: str, config: MetricsBenchConfig, on: bool
) -> Run:
    from common.cache import CacheSettings, CachingConsumer  # noqa: PLC0415
    from common.cache.metrics import CacheMetrics  # noqa: PLC0415
    from common.collectors import ServiceCollector  # noqa: PLC0415
    from common.exposition import MetricsServer, new_registry  # noqa: PLC0415
    from common.watermarks import WatermarkReader  # noqa: PLC0415
    from feed_publisher.universe import universe  # noqa: PLC0415
    from marketfeed.bench.core.clients import kafka_fields  # noqa: PLC0415

    async with WatermarkReader(settings.bootstrap) as marks:
        end = sum((await marks.high_watermarks([settings.topics.quotes])).values())
    cache_settings = CacheSettings(
        **kafka_fields(settings),
        redis_url=redis_url,
        redis_prefix=f"bm{uuid.uuid4().hex[:8]}:",
        snapshot_timeout=0.1,  # nobody answers: replay the backlog from its start
    )
    hook = CacheMetrics() if on else None
    in_hook = 0.0

    def timed(batch: PreparedBatch, applied_ns: int) -> None:
        nonlocal in_hook
        assert hook is not None
        begun = time.perf_counter()
        hook.applied(batch, applied_ns)
        in_hook += time.perf_counter() - begun

    consumer = CachingConsumer(
        cache_settings,
        service=SERVICE,
        interest=universe(config.symbols),
        on_applied=timed if hook is not None else None,
    )
    async with contextlib.AsyncExitStack() as stack:
        server = None
        if hook is not None:
            hook.consumer = consumer
            registry = new_registry()
            registry.register(ServiceCollector(SERVICE, hook))
            server = MetricsServer(registry, host="127.0.0.1", port=0, service=SERVICE)
            await stack.enter_async_context(server)
        started = time.monotonic()
        await stack.enter_async_context(consumer)
        scrapes = await stack.enter_async_context(_scraping(server, config))
        # Polled, not signalled: a hook telling each batch would be a cost of the "off" run.
        while sum(p.offset for p in consumer.positions.values()) < end:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        spent = in_hook + (scrapes() * _scrape_cost(server.registry) if server else 0.0)
    return Run("cache", on, end / elapsed, scrapes(), spent / elapsed)


def _scrape_cost(registry: CollectorRegistry, times: int = 20) -> float:
    """Seconds one scrape of ``registry`` takes to collect and format (the mean of ``times``)."""
    from prometheus_client.exposition import generate_latest  # noqa: PLC0415

    begun = time.perf_counter()
    for _ in range(times):
        generate_latest(registry)
    return (time.perf_counter() - begun) / times


@contextlib.asynccontextmanager
async def _scraping(
    server: MetricsServer | None, config: MetricsBenchConfig
) -> AsyncIterator[Callable[[], int]]:
    """Scrape ``server`` every ``--scrape-every`` seconds while inside; yields the count so far."""
    done = 0

    async def scrape() -> None:
        nonlocal done
        assert server is not None
        while True:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            await reader.read()  # to the end: the server closes after each answer
            writer.close()
            done += 1
            await asyncio.sleep(config.scrape_every)

    task = asyncio.create_task(scrape(), name="bench-scraper") if server is not None else None
    try:
        yield lambda: done
    finally:
        await cancel_and_wait(task)


async def measure(config: MetricsBenchConfig) -> list[Run]:
    from common.kafka import KafkaSettings  # noqa: PLC0415 - see the docstring
    from marketfeed.bench.core.servers import bench_servers, run_prefix  # noqa: PLC0415

    runs: list[Run] = []
    async with bench_servers(bootstrap=None, services=(SERVICE,), prefix="") as servers:
        for round_ in range(config.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for on in order:
                settings = KafkaSettings(
                    bootstrap=servers.bootstrap,
                    partitions=config.partitions,
                    topic_prefix=run_prefix("metrics"),
                )
                runs.append(await _publisher(settings, config, on))
                redis_url = servers.redis_urls[SERVICE]
                runs.append(await _cache(settings, redis_url, config, on))
    return runs


def render(runs: list[Run], config: MetricsBenchConfig) -> str:
    rows = []
    for what, unit in (("publisher", "acked msg/s"), ("cache", "records read/s")):
        off = statistics.median(r.rate for r in runs if r.what == what and not r.metrics)
        on = statistics.median(r.rate for r in runs if r.what == what and r.metrics)
        scrapes = sum(r.scrapes for r in runs if r.what == what)
        share = statistics.median(r.share for r in runs if r.what == what and r.metrics)
        rows.append(
            [what, unit, f"{off:,.0f}", f"{on:,.0f}", f"{on / off:.3f}", str(scrapes),
             f"{share:.3%}"]
        )  # fmt: skip
    head = (
        f"metrics on vs off, median of {config.rounds} rounds (order swapped each round); "
        f"{config.symbols} symbols, publisher runs of {config.duration:g}s, scraped every "
        f"{config.scrape_every:g}s when on"
    )
    columns = ["path", "unit", "off", "on", "on/off", "scrapes", "time on metrics"]
    return head + "\n" + table(columns, rows)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, MetricsBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(MetricsBenchConfig, args)
    setup_logging(config.log_level)
    print(render(await measure(config), config))
    return EXIT_OK
