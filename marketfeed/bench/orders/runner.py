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
from dataclasses import asdict
from pathlib import Path

import faust

from feed_publisher.universe import universe
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.servers import Servers, bench_servers, environment, run_prefix
from marketfeed.bench.core.servers import log_dir as run_log_dir
from marketfeed.bench.core.settings import rate_label
from marketfeed.bench.orders.env import ECHO, ORDER_ENTRY, OrderEnv, RunContext
from marketfeed.bench.orders.join import measure_join, start_serving
from marketfeed.bench.orders.results import OrdersResults, RateStep, TargetStep, ratios
from marketfeed.bench.orders.settings import OrdersBenchConfig
from marketfeed.bench.orders.steps import measure_target

SHARED = "shared with the join phase"


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


def _context(config: OrdersBenchConfig, servers: Servers, log_dir: Path) -> RunContext:
    tradable = tuple(universe(config.symbols)[: config.tradable])
    tradable_file = log_dir / "tradable.txt"
    tradable_file.write_text("\n".join(tradable) + "\n")
    return RunContext(
        config=config,
        bootstrap=servers.bootstrap,
        redis_url=servers.redis_urls[ORDER_ENTRY],
        log_dir=log_dir,
        tradable=tradable,
        tradable_file=tradable_file,
        servers=servers.pids(lambda _: "redis"),  # order_entry's, the only one
    )


async def measure(config: OrdersBenchConfig, progress: StepProgress) -> OrdersResults:
    env_info = environment(config, embedded_redis="embedded redis-server")
    results = OrdersResults(config=asdict(config), environment=env_info)
    results.environment["faust"] = faust.__version__
    results.config["out"] = str(config.out) if config.out else None
    results.notes = _notes(config)
    prefix = run_prefix("orders")
    async with contextlib.AsyncExitStack() as stack:
        log_dir = run_log_dir(stack, config.out, "orders")
        servers = await stack.enter_async_context(
            bench_servers(
                bootstrap=config.bootstrap,
                redis_url=config.redis_url,
                services=(ORDER_ENTRY,),
                prefix=prefix,
                log_dir=log_dir,
                progress=progress.phase,
            )
        )
        results.environment.update(
            bootstrap=servers.bootstrap,
            topic_prefix=prefix,
            redis_url=servers.redis_urls[ORDER_ENTRY],
        )
        ctx = _context(config, servers, log_dir)
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
