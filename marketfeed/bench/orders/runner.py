"""Runs the orders benchmark: servers once, the join phase, then the rate steps.

The embedded broker and Redis (or the given ones) serve the whole run. The join phase gets
topics of its own with a publisher and order_entry processes (marketfeed.bench.orders.join).
Then every rate step gets fresh topics and freshly started processes: a publisher, one
order_entry and the echo baseline (on topics of its own). Why: above what order_entry answers,
an open-loop step leaves a backlog of commands that would otherwise be answered during the
next step, and the embedded broker gets slower to read the more a topic holds (order_entry's
quote cache falls behind, and its orders are rejected as STALE_QUOTE), so a step on older
topics would measure the steps before it. With --no-fresh-topics (--smoke) every step runs on
the join phase's topics and its remaining order_entry, which saves a group join per step.
Each step runs the echo first, then order_entry: a saturated order_entry goes on answering its
backlog after its window, which would take CPU from a baseline run after it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from common.runtime import EmbeddedStack
from feed_publisher.universe import universe
from marketfeed.bench.consumers.runner import check_redis, forget_keys
from marketfeed.bench.consumers.step import rate_label
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.servers import run_prefix
from marketfeed.bench.orders.env import ECHO, ORDER_ENTRY, OrderEnv, RunContext
from marketfeed.bench.orders.join import measure_join, start_serving
from marketfeed.bench.orders.results import OrdersResults, RateStep, TargetStep, ratios
from marketfeed.bench.orders.settings import OrdersBenchConfig
from marketfeed.bench.orders.steps import measure_target

SHARED = "shared with the join phase"


def _environment(config: OrdersBenchConfig) -> dict[str, Any]:
    import aiokafka  # noqa: PLC0415 - only for their versions
    import faust  # noqa: PLC0415

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiokafka": aiokafka.__version__,
        "faust": faust.__version__,
        "redis_py": redis.__version__,
        "broker": config.bootstrap or "embedded Tansu (memory engine)",
        "redis": config.redis_url or "embedded redis-server",
    }


def _notes(config: OrdersBenchConfig) -> list[str]:
    notes = [
        "rate steps run with one order_entry process: the second one of the join phase is "
        "stopped before them",
        "each step runs the echo baseline first, then order_entry, on topics of their own, "
        "with the publisher going on at its rate throughout",
        "latency runs from the intended send time (open loop) or the send (closed loop, max) "
        "to the terminal event; '>=': some orders had no answer and are counted at the "
        "latency they had reached, a lower bound",
        "achieved/s counts the terminal events that arrived during the window, whenever their "
        "orders were sent; quotes/s is what the publisher added to md.quotes meanwhile; cache "
        "lag is order_entry's quote cache behind md.quotes at the end of the window (records "
        "waiting, and the time lag of its worst partition)",
    ]
    if not config.fresh_topics:
        notes.append("every step runs on the join phase's topics and processes")
    return notes


async def _run_step(
    env: OrderEnv, rate: float | None, topics: str, progress: StepProgress
) -> RateStep:
    targets: dict[str, TargetStep] = {}
    for target in (ECHO, ORDER_ENTRY):
        targets[target] = await measure_target(env, target, rate, progress.phase)
    return RateStep(
        label=rate_label(rate),
        target_rate=rate,
        topics=topics,
        targets=targets,
        ratios=ratios(targets[ORDER_ENTRY], targets[ECHO]),
    )


async def measure(config: OrdersBenchConfig, progress: StepProgress) -> OrdersResults:
    results = OrdersResults(config=asdict(config), environment=_environment(config))
    results.config["out"] = str(config.out) if config.out else None
    results.notes = _notes(config)
    prefix = run_prefix("orders")
    async with contextlib.AsyncExitStack() as stack:
        if config.out is not None:
            log_dir = config.out / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-orders-")))
        servers: dict[str, int | None] = {}
        embedded: EmbeddedStack | None = None
        if config.bootstrap is None or config.redis_url is None:
            progress.phase("starting the embedded servers")
            embedded = EmbeddedStack(
                services=() if config.redis_url else (ORDER_ENTRY,),
                log_dir=log_dir,
                with_broker=config.bootstrap is None,
            )
            await stack.enter_async_context(embedded)
            if embedded.broker is not None:
                servers["broker"] = embedded.broker.pid
            if ORDER_ENTRY in embedded.redis:
                servers["redis"] = embedded.redis[ORDER_ENTRY].pid
        bootstrap = config.bootstrap or (embedded.bootstrap if embedded else "")
        redis_url = config.redis_url or (embedded.redis_url(ORDER_ENTRY) if embedded else "")
        if config.redis_url:
            await check_redis(config.redis_url)
            stack.push_async_callback(forget_keys, config.redis_url, [prefix])
        results.environment.update(bootstrap=bootstrap, topic_prefix=prefix, redis_url=redis_url)
        tradable = tuple(universe(config.symbols)[: config.tradable])
        tradable_file = log_dir / "tradable.txt"
        tradable_file.write_text("\n".join(tradable) + "\n")
        ctx = RunContext(
            config=config,
            bootstrap=bootstrap,
            redis_url=redis_url,
            log_dir=log_dir,
            tradable=tradable,
            tradable_file=tradable_file,
            servers=servers,
        )
        progress.phase("join: starting the publisher")
        env = OrderEnv(ctx, f"{prefix}join.", "join")
        # Whichever env is current when the run ends (each step may replace it).
        stack.push_async_callback(lambda: env.stop())  # noqa: PLW0108
        await env.start()
        join = results.join = await measure_join(env, progress.phase)
        progress.advance()
        for index, rate in enumerate(config.rates):
            topics = SHARED
            if config.fresh_topics:
                progress.phase(f"{rate_label(rate)} orders/s: starting fresh processes")
                await env.stop()
                env = OrderEnv(ctx, f"{prefix}s{index + 1}.", f"step{index + 1}")
                await env.start()
                join.later_fill_s.append(await start_serving(env, ORDER_ENTRY))
                topics = "fresh"
            if ECHO not in env.processes:
                join.echo_first_answer_s.append(await start_serving(env, ECHO))
            results.steps.append(await _run_step(env, rate, topics, progress))
            progress.advance()
        progress.phase("stopping")
    return results
