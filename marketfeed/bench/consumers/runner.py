"""Runs the consumer benchmark: servers once, then each rate step with processes of its own.

The embedded broker and Redis servers (or the given ones) serve the whole run. Each step gets
fresh topics (and Redis key prefixes), its own watermark reader, a publisher worker and the
consumer workers, all stopped at the end of the step; see marketfeed.bench.consumers.command
for why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from common.kafka import ensure_topics, market_data_topics
from common.watermarks import WatermarkReader
from feed_publisher.universe import universe
from marketfeed.bench.consumers.getquote import measure_get_quote, redis_benchmark_binary
from marketfeed.bench.consumers.lag import LagSampler
from marketfeed.bench.consumers.results import ConsumerStep, Results, Step
from marketfeed.bench.consumers.roles.base import WorkerParams
from marketfeed.bench.consumers.settings import (
    CACHING_UNSIGNED,
    REDIS_WRITERS,
    ConsumersBenchConfig,
    Plan,
)
from marketfeed.bench.consumers.step import StepRun
from marketfeed.bench.consumers.summary import summarise
from marketfeed.bench.consumers.workers import Worker
from marketfeed.bench.core.clients import feed_fields, kafka_fields, kafka_settings
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.servers import (
    bench_servers,
    environment,
    run_prefix,
)
from marketfeed.bench.core.settings import rate_label

# Seconds a worker may take to start beyond the broker's connect timeout (imports, topic
# creation, the caching consumer's snapshot request).
_WORKER_START_S = 30.0


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

    def worker(self, index: int, role: str, params: WorkerParams) -> Worker:
        timeout = self.config.connect_timeout + _WORKER_START_S
        return Worker(role, params, start_timeout=timeout, log_path=self.log_path(index, role))


async def _step(
    run: _Run, index: int, rate: float | None, names: Sequence[str], results: Results
) -> Step:
    """One rate step on topics of its own, with a publisher and consumers started for it."""
    config = run.config
    prefix = f"{run.prefix}s{index + 1}."
    kafka = kafka_settings(config, run.base.bootstrap, prefix)
    await ensure_topics(kafka, market_data_topics(kafka))
    params = replace(run.base, topic_prefix=prefix)
    label = rate_label(rate)
    async with contextlib.AsyncExitStack() as stack:
        # Started after its topics exist: WatermarkReader never sees a topic created after it
        # started (its metadata refresh does not reach the consumer's cluster view).
        reader = WatermarkReader(run.base.bootstrap, connect_timeout=config.connect_timeout)
        await stack.enter_async_context(reader)
        run.progress.phase(f"{label} msg/s: starting the publisher")
        # First: the caching consumer's snapshot request needs the publisher to answer it.
        publisher = run.worker(index, "publisher", replace(params, rate=rate))
        await stack.enter_async_context(publisher)
        workers = {
            name: run.worker(index, name, _consumer_params(params, name, run.urls, prefix))
            for name in names
        }
        for worker in workers.values():
            stack.push_async_callback(worker.stop)
        run.progress.phase(f"{label} msg/s: starting {', '.join(workers)}")
        started = await asyncio.gather(
            *(w.start() for w in workers.values()), return_exceptions=True
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


def _consumer_params(
    params: WorkerParams, name: str, urls: dict[str, str], prefix: str
) -> WorkerParams:
    """A consumer's params in a step: its own Redis and key prefix; no key for the one that
    verifies nothing (the feed it reads is signed all the same)."""
    mine = replace(params, redis_url=urls.get(name, ""), redis_prefix=f"{prefix}{name}:")
    return replace(mine, **feed_fields(signed=False)) if name == CACHING_UNSIGNED else mine


def _retire(step: Step, retired: dict[str, str]) -> None:
    """Consumers whose lag was unbounded at this rate while the bare ceiling's was bounded are
    not run at higher rates: the limit was their own, and at a higher rate they would only take
    CPU from the rest. When the ceiling was unbounded too, the limit was the broker (or the
    machine), which on the embedded broker depends on batch sizes, not only on the rate (the
    unthrottled publisher sends far bigger batches), so nobody is retired.
    """
    ceiling = step.consumers.get("bare")
    ceiling_ok = ceiling is None or ceiling.bounded is True
    for name, result in step.consumers.items():
        if result.bounded is not False:
            continue
        result.note = _why_unbounded(result, step.label)
        if ceiling_ok and name != "bare":
            retired[name] = f"retired: {result.note}"


def _why_unbounded(result: ConsumerStep, label: str) -> str:
    if result.lag is not None and not result.lag.kept_up:
        return f"lag {result.lag.trend} at {label} msg/s"
    return f"lag unbounded at {label} msg/s: did not catch up after the pause"


def _worker_params(config: ConsumersBenchConfig, bootstrap: str, prefix: str) -> WorkerParams:
    """What every worker of the run is given; each step and role replaces what is its own."""
    return WorkerParams(
        **kafka_fields(kafka_settings(config, bootstrap, prefix)),
        **feed_fields(),
        symbols=config.symbols,
        seed=config.seed,
        log_level=config.log_level,
        cycle_ms=config.cycle_ms,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        interest=config.interest_count,
    )


async def _steps(run: _Run, results: Results) -> None:
    config = run.config
    retired: dict[str, str] = {}
    for index, rate in enumerate(run.plan.rates):
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
        run.progress.advance()


async def measure(config: ConsumersBenchConfig, progress: StepProgress) -> Results:
    env = environment(config, embedded_redis="embedded redis-server, one per consumer")
    results = Results(config=asdict(config), environment=env)
    results.environment["redis_benchmark"] = redis_benchmark_binary()
    results.config["out"] = str(config.out) if config.out else None
    log_dir = config.out / "logs" if config.out else None
    writers = [c for c in config.consumers if c in REDIS_WRITERS]
    prefix = run_prefix("consumers")
    async with bench_servers(
        bootstrap=config.bootstrap,
        redis_url=config.redis_url,
        services=writers,
        prefix=prefix,
        log_dir=log_dir,
        progress=progress.phase,
    ) as servers:
        results.environment.update(
            bootstrap=servers.bootstrap, topic_prefix=prefix, redis_urls=servers.redis_urls
        )
        base = _worker_params(config, servers.bootstrap, prefix)
        plan = config.plan()
        urls, pids = servers.redis_urls, servers.pids(lambda name: f"redis {name}")
        await _steps(_Run(config, plan, base, prefix, urls, pids, progress, log_dir), results)
        progress.phase("stopping")
    results.summary = summarise(results)
    return results
