"""One rate step against one target: warm up, measure a window, wait for the answers.

The target (order_entry, or the echo baseline) is driven by its own OrderDriver; the other
target's driver is paused meanwhile, so only one order flow loads the machine at a time, while
the publisher goes on at its rate throughout. Beside the driver, a sampler reads the quote
topic's high watermarks and every process's CPU time at the start and the end of the window:
the publisher's achieved quote rate during the window, and where the cores went; and at its
end, how far order_entry's quote cache is behind the feed (a cache that falls more than its
``--stale-after`` behind rejects orders as STALE_QUOTE).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from common.lifecycle import cancel_all
from marketfeed.bench.core.children import cores
from marketfeed.bench.core.progress import Progress
from marketfeed.bench.core.settings import rate_label
from marketfeed.bench.orders.driver import Tally
from marketfeed.bench.orders.env import FIRST, OrderEnv
from marketfeed.bench.orders.results import TargetStep


@dataclass(slots=True)
class _Window:
    quote_rate: float
    cpu: dict[str, float | None]
    cache_lag: tuple[int, float] | None  # order_entry's quote cache at the end


async def _sample_window(env: OrderEnv, warmup: float, duration: float) -> _Window:
    """The quote rate and CPU (cores) of each process over the measurement window."""
    await asyncio.sleep(warmup)
    await env.quote_marks()
    published0, cpu0, t0 = env.feed.published, env.cpu(), time.monotonic()
    await asyncio.sleep(max(0.0, t0 + duration - time.monotonic()))
    marks1 = await env.quote_marks()
    published1, cpu1, t1 = env.feed.published, env.cpu(), time.monotonic()
    lag = await env.cache_lag(FIRST, marks1)
    elapsed = max(t1 - t0, 1e-9)
    published = published1 - published0
    return _Window(published / elapsed, cores(cpu0, cpu1, elapsed), lag)


async def measure_target(
    env: OrderEnv, target: str, rate: float | None, progress: Progress
) -> TargetStep:
    config = env.ctx.config
    driver = env.drivers[target]
    label = rate_label(rate)
    driver.resume()
    try:
        progress(f"{label} orders/s: {target}, {config.warmup:g}s warm-up + {config.duration:g}s")
        sampler = asyncio.create_task(_sample_window(env, config.warmup, config.duration))
        try:
            if rate is None:
                tally = await driver.run_closed(
                    config.window, warmup=config.warmup, duration=config.duration
                )
            else:
                tally = await driver.run_open(rate, warmup=config.warmup, duration=config.duration)
            sampled = await sampler
        finally:
            # Ended already, unless the driver failed: then it has nothing left to say.
            await cancel_all([sampler])
        progress(f"{label} orders/s: {target}, waiting for the last answers")
        await driver.settle(tally, config.answer_timeout)
    finally:
        driver.forget()
        driver.pause()
    env.check()
    return _result(target, tally, sampled)


def _result(target: str, tally: Tally, sampled: _Window) -> TargetStep:
    window = tally.window_s
    lag = sampled.cache_lag
    return TargetStep(
        target=target,
        window_s=window,
        sent=tally.sent,
        answered=tally.answered,
        unanswered=tally.unanswered,
        send_failed=tally.send_failed,
        achieved_rate=tally.arrivals / window if window > 0 else 0.0,
        latency_ms=tally.latency.percentiles().as_dict(),
        latency_lower_bound=tally.unanswered > 0,
        outcomes=dict(tally.outcomes),
        reject_reasons=dict(tally.reject_reasons),
        quote_rate=sampled.quote_rate,
        cache_lag_records=lag[0] if lag else None,
        cache_lag_s=lag[1] if lag else None,
        cpu=sampled.cpu,
    )
