"""Runs the consumer benchmark: servers once, then each rate step with processes of its own.

The embedded broker and Redis servers (or the given ones) serve the whole run. Each step gets
fresh topics (and Redis key prefixes), its own watermark reader, a publisher worker and the
consumer workers, all stopped at the end of the step; see marketfeed.bench.consumers for why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions

from common.errors import CacheUnavailableError
from common.kafka import KafkaSettings, ensure_topics, market_data_topics
from common.runtime import EmbeddedStack
from common.watermarks import WatermarkReader
from feed_publisher.universe import universe
from marketfeed.bench.consumers.getquote import measure_get_quote, redis_benchmark_binary
from marketfeed.bench.consumers.lag import LagSampler
from marketfeed.bench.consumers.params import WorkerParams
from marketfeed.bench.consumers.results import ConsumerStep, Results, Step
from marketfeed.bench.consumers.settings import ConsumersBenchConfig
from marketfeed.bench.consumers.step import Plan, StepRun, rate_label
from marketfeed.bench.consumers.summary import summarise
from marketfeed.bench.consumers.workers import Worker
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.servers import run_prefix

# Seconds a worker may take to start beyond the broker's connect timeout (imports, topic
# creation, the caching consumer's snapshot request).
_WORKER_START_S = 30.0


async def check_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise CacheUnavailableError(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        await client.aclose()


async def forget_keys(url: str, prefixes: Sequence[str]) -> None:
    """Remove what the consumers wrote into a Redis that is not ours."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for prefix in prefixes:
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                await client.delete(key)
    finally:
        await client.aclose()


def _environment(config: ConsumersBenchConfig) -> dict[str, Any]:
    import aiokafka  # noqa: PLC0415 - only for its version

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiokafka": aiokafka.__version__,
        "redis_py": redis.__version__,
        "broker": config.bootstrap or "embedded Tansu (memory engine)",
        "redis": config.redis_url or "embedded redis-server, one per consumer",
        "redis_benchmark": redis_benchmark_binary(),
    }


@dataclass(slots=True)
class _Run:
    """What every step of one run shares: settings, servers and addresses."""

    config: ConsumersBenchConfig
    plan: Plan
    base: WorkerParams
    prefix: str  # of every topic and Redis key of the run
    urls: dict[str, str]  # Redis of each consumer that writes one
    servers: dict[str, int | None]  # pids of the embedded servers, for their CPU
    progress: StepProgress
    log_dir: Path | None

    def log_path(self, index: int, role: str) -> Path | None:
        return self.log_dir / f"step{index + 1}-{role}.log" if self.log_dir else None


async def _step(
    run: _Run, index: int, rate: float | None, names: Sequence[str], results: Results
) -> Step:
    """One rate step on topics of its own, with a publisher and consumers started for it."""
    config = run.config
    prefix = f"{run.prefix}s{index + 1}."
    kafka = KafkaSettings(
        bootstrap=run.base.bootstrap,
        topic_prefix=prefix,
        partitions=config.partitions,
        connect_timeout=config.connect_timeout,
    )
    await ensure_topics(kafka, market_data_topics(kafka))
    params = replace(run.base, topic_prefix=prefix)
    timeout = config.connect_timeout + _WORKER_START_S
    label = rate_label(rate)
    async with contextlib.AsyncExitStack() as stack:
        # Started after its topics exist: WatermarkReader never sees a topic created after it
        # started (its metadata refresh does not reach the consumer's cluster view).
        reader = WatermarkReader(run.base.bootstrap, connect_timeout=config.connect_timeout)
        await stack.enter_async_context(reader)
        run.progress.phase(f"{label} msg/s: starting the publisher")
        publisher = Worker(
            "publisher", replace(params, rate=rate), log_path=run.log_path(index, "publisher")
        )
        stack.push_async_callback(publisher.stop)
        # First: the caching consumer's snapshot request needs the publisher to answer it.
        await publisher.start(timeout)
        workers = {
            name: Worker(
                name,
                replace(params, redis_url=run.urls.get(name, ""), redis_prefix=f"{prefix}{name}:"),
                log_path=run.log_path(index, name),
            )
            for name in names
        }
        for worker in workers.values():
            stack.push_async_callback(worker.stop)
        run.progress.phase(f"{label} msg/s: starting {', '.join(workers)}")
        started = await asyncio.gather(
            *(w.start(timeout) for w in workers.values()), return_exceptions=True
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        step = StepRun(
            run.plan,
            rate,
            publisher=publisher,
            consumers=workers,
            sampler=LagSampler(reader, kafka.topics.quotes, workers),
            servers=run.servers,
            progress=run.progress.phase,
        )
        await step.warm_up()
        if index == 0 and "caching" in workers:
            run.progress.phase(f"{label} msg/s: timing get quote")
            results.get_quote = await measure_get_quote(
                run.urls["caching"],
                f"{prefix}caching:",
                universe(config.symbols)[0],
                config.get_samples,
            )
        outcome_step = await step.measure()
        run.progress.phase(f"{label} msg/s: stopping its processes")
    return outcome_step


def _retire(step: Step, retired: dict[str, str]) -> None:
    """Consumers whose lag went unbounded at this rate while the bare ceiling kept up are not
    run at higher rates: the limit was their own, and at a higher rate they would only take
    CPU from the rest. When the ceiling fell behind too, the limit was the broker (or the
    machine), which on the embedded broker depends on batch sizes, not only on the rate (the
    unthrottled publisher sends far bigger batches), so nobody is retired.
    """
    ceiling = step.consumers.get("bare")
    ceiling_ok = ceiling is None or (ceiling.lag is not None and ceiling.lag.bounded)
    for name, result in step.consumers.items():
        if result.lag is not None and not result.lag.bounded:
            result.note = f"lag unbounded at {step.label} msg/s"
            if ceiling_ok and name != "bare":
                retired[name] = f"retired: {result.note}"
        elif result.catch_up is not None and not result.catch_up.caught_up:
            result.note = f"did not catch up at {step.label} msg/s"


async def measure(config: ConsumersBenchConfig, progress: StepProgress) -> Results:
    plan = config.plan()
    results = Results(config=asdict(config), environment=_environment(config))
    results.config["out"] = str(config.out) if config.out else None
    log_dir = config.out / "logs" if config.out else None
    writers = [c for c in config.consumers if c in ("caching", "naive")]
    own_redis = () if config.redis_url else tuple(writers)
    prefix = run_prefix("consumers")
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, int | None] = {}
        embedded: EmbeddedStack | None = None
        if config.bootstrap is None or own_redis:
            progress.phase("starting the embedded servers")
            embedded = EmbeddedStack(
                services=own_redis, log_dir=log_dir, with_broker=config.bootstrap is None
            )
            await stack.enter_async_context(embedded)
            if embedded.broker is not None:
                servers["broker"] = embedded.broker.pid
            servers.update({f"redis {n}": s.pid for n, s in embedded.redis.items()})
        bootstrap = config.bootstrap or (embedded.bootstrap if embedded else "")
        urls = {
            name: config.redis_url or (embedded.redis_url(name) if embedded else "")
            for name in writers
        }
        results.environment.update(bootstrap=bootstrap, topic_prefix=prefix, redis_urls=urls)
        if config.redis_url:
            await check_redis(config.redis_url)
            stack.push_async_callback(forget_keys, config.redis_url, [prefix])
        base = WorkerParams(
            bootstrap=bootstrap,
            topic_prefix=prefix,
            partitions=config.partitions,
            symbols=config.symbols,
            seed=config.seed,
            log_level=config.log_level,
            connect_timeout=config.connect_timeout,
            linger_ms=config.linger_ms,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            interest=config.interest_count,
        )
        run = _Run(config, plan, base, prefix, urls, servers, progress, log_dir)
        retired: dict[str, str] = {}
        for index, rate in enumerate(plan.rates):
            names = [n for n in config.consumers if n not in retired]
            if not names:
                break
            step = await _step(run, index, rate, names, results)
            step.consumers = {
                n: step.consumers.get(n) or ConsumerStep(n, measured=False, note=retired[n])
                for n in config.consumers
            }
            _retire(step, retired)
            results.steps.append(step)
            progress.advance()
        progress.phase("stopping")
    results.summary = summarise(results)
    return results
