"""Join and warm: how long a new order_entry process takes to serve orders.

On topics of their own, with the publisher already running:

1. the first order_entry is spawned, and probe orders (one every ~100 ms, one symbol per order
   partition in turn) are sent until one is answered FILLED: spawn -> first fill, with the
   group join and the cache warm-up from its ``orders:meta``;
2. a second order_entry is spawned into the same group (its own quote cache, under its own
   Redis prefix; the order ledger of the first). Its ``{prefix}orders:meta`` hash (written by
   order_entry after each rebalance: ``assigned``, ``joined_ns``, ``ready_ns``, ``rebalances``)
   is polled, with the first's, until both report disjoint shares that cover every partition;
   then probes on its own partitions confirm that it answers. The probes keep going throughout,
   so how long orders were held while the group rebalanced is measured as well;
3. the second is stopped, and the first's meta is polled until it holds every partition again.

If order_entry writes no ``orders:meta`` (an older version), step 2 falls back to probing only
and says so: the second process is taken to serve when the orders the rebalance held are
answered again, by whichever process. Meta times are wall clock (``time.time_ns()``) of the
same host as the benchmark's.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from common.errors import RuntimeStartError
from common.partitioner import partitions_for
from marketfeed.bench.core.progress import Progress
from marketfeed.bench.orders.env import FIRST, ORDER_ENTRY, SECOND, OrderEnv, Spawned
from marketfeed.bench.orders.probe import ProbeAnswer, Prober
from marketfeed.bench.orders.results import JoinResults, ProcessJoin, SecondJoin

T = TypeVar("T")

_POLL_S = 0.05
# How long meta may lag the first fill (it is written right after the cache is warm).
_META_GRACE_S = 2.0
# Probes answered after the first fill before the second process starts: the usual latency.
_STEADY_PROBES = 5


@dataclass(frozen=True, slots=True)
class Meta:
    assigned: frozenset[int]
    rebalances: int
    joined_ns: int
    ready_ns: int


async def read_meta(env: OrderEnv, process: str) -> Meta | None:
    raw = await env.redis.hgetall(f"{env.redis_prefix(process)}orders:meta")
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        return Meta(
            assigned=frozenset(int(p) for p in fields["assigned"].split(",") if p),
            rebalances=int(fields["rebalances"]),
            joined_ns=int(fields["joined_ns"]),
            ready_ns=int(fields["ready_ns"]),
        )
    except (KeyError, ValueError):
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _poll(
    fetch: Callable[[], Awaitable[T | None]], timeout: float, check: Callable[[], None]
) -> T | None:
    deadline = time.monotonic() + timeout
    while (value := await fetch()) is None:
        if time.monotonic() > deadline:
            return None
        check()
        await asyncio.sleep(_POLL_S)
    return value


def probe_symbols(tradable: tuple[str, ...], partitions: int) -> dict[int, str]:
    """One tradable symbol per order partition that has any."""
    return {p: min(s) for p, s in sorted(partitions_for(tradable, partitions).items())}


def _s(ns: int) -> float:
    return ns / 1e9


async def _first_fill(
    prober: Prober, spawned: Spawned, env: OrderEnv, symbols: set[str] | None, after: float
) -> ProbeAnswer | None:
    def match(answer: ProbeAnswer) -> bool:
        return answer.filled and answer.sent >= after and (not symbols or answer.symbol in symbols)

    return await prober.wait_for(match, env.ctx.config.join_timeout, check=env.check)


async def measure_join(env: OrderEnv, progress: Progress) -> JoinResults:
    config = env.ctx.config
    by_partition = probe_symbols(env.ctx.tradable, config.partitions)
    driver = env.drivers[ORDER_ENTRY]
    driver.resume()
    prober = Prober(driver, list(by_partition.values()))
    try:
        progress("join: starting order_entry")
        one = await env.spawn_order_entry(FIRST, ledger=FIRST)
        await prober.start()
        fill = await _first_fill(prober, one, env, None, one.at)
        if fill is None:
            raise RuntimeStartError(
                f"order_entry filled no order within {config.join_timeout:.0f}s of its start "
                f"(see {one.proc.log_path})"
            )
        meta = await _poll(lambda: read_meta(env, FIRST), _META_GRACE_S, env.check)
        first = ProcessJoin(
            spawn_to_fill_s=fill.answered - one.at,
            spawn_to_assigned_s=_s(meta.joined_ns - one.wall_ns) if meta else None,
            assigned_to_warm_s=_s(meta.ready_ns - meta.joined_ns) if meta else None,
            partitions=len(meta.assigned) if meta else None,
        )
        # The probes queued during its start were answered in a burst; the usual latency of
        # one process serving is that of probes sent after it.
        await prober.steady(sent_after=fill.answered, count=_STEADY_PROBES, timeout=10.0)
        usual = prober.median_s(sent_after=fill.answered)
        progress("join: starting a second order_entry")
        if meta is not None:
            second = await _second_by_meta(env, prober, one, meta, by_partition, usual, progress)
        else:
            second = await _second_by_probing(env, prober, usual, progress)
    finally:
        await prober.stop()
        driver.forget()
        driver.pause()
    return JoinResults(first=first, second=second)


async def _second_by_meta(
    env: OrderEnv,
    prober: Prober,
    one: Spawned,
    meta: Meta,
    by_partition: dict[int, str],
    usual: float,
    progress: Progress,
) -> SecondJoin:
    config = env.ctx.config
    every = frozenset(range(config.partitions))
    two = await env.spawn_order_entry(SECOND, ledger=FIRST)

    async def split() -> tuple[Meta, Meta] | None:
        a, b = await read_meta(env, FIRST), await read_meta(env, SECOND)
        if a is None or b is None or a.rebalances <= meta.rebalances:
            return None
        if a.assigned & b.assigned or a.assigned | b.assigned != every or not b.assigned:
            return None
        return a, b

    shares = await _poll(split, config.join_timeout, env.check)
    if shares is None:
        raise RuntimeStartError(
            f"the order group did not split between two processes within "
            f"{config.join_timeout:.0f}s (see {two.proc.log_path})"
        )
    a, b = shares
    mine = {by_partition[p] for p in b.assigned if p in by_partition}
    fill = None
    if mine:
        prober.symbols = sorted(mine)
        fill = await _first_fill(prober, two, env, mine, two.mono(b.ready_ns))
        prober.symbols = list(by_partition.values())
    held = prober.held_s(two.at, time.monotonic())
    process = ProcessJoin(
        spawn_to_fill_s=fill.answered - two.at if fill else None,
        spawn_to_assigned_s=_s(b.joined_ns - two.wall_ns),
        assigned_to_warm_s=_s(b.ready_ns - b.joined_ns),
        partitions=len(b.assigned),
    )
    rebalanced = max(two.mono(a.ready_ns), two.mono(b.ready_ns)) - two.at

    progress("join: stopping the second order_entry")
    stopped = time.monotonic()

    async def back() -> Meta | None:
        m = await read_meta(env, FIRST)
        return m if m and m.rebalances > a.rebalances and m.assigned == every else None

    killed = await _stop_second(env)
    whole = await _poll(back, config.join_timeout, env.check)
    takeover_fill = None
    if whole is not None and mine:
        prober.symbols = sorted(mine)
        takeover_fill = await _first_fill(prober, one, env, mine, one.mono(whole.ready_ns))
    return SecondJoin(
        method="orders:meta",
        process=process,
        rebalanced_s=rebalanced,
        usual_ms=usual * 1000,
        held_max_ms=held * 1000,
        takeover_s=one.mono(whole.ready_ns) - stopped if whole else None,
        takeover_fill_s=takeover_fill.answered - stopped if takeover_fill else None,
        takeover_held_max_ms=prober.held_s(stopped, time.monotonic()) * 1000,
        note="; ".join(
            ([killed] if killed else [])
            + ([] if whole else ["the first process did not take every partition back in time"])
        ),
    )


async def _stop_second(env: OrderEnv) -> str:
    """Stop the second process; say so if it had to be killed."""
    proc = env.processes[SECOND]
    await env.stop_process(SECOND)
    if proc.returncode == -signal.SIGKILL:
        return (
            "the second order_entry did not stop on SIGTERM and was killed: the takeover "
            "includes the group's session timeout"
        )
    return ""


async def _second_by_probing(
    env: OrderEnv, prober: Prober, usual: float, progress: Progress
) -> SecondJoin:
    config = env.ctx.config
    threshold = max(1.0, 3 * usual)
    two = await env.spawn_order_entry(SECOND, ledger=FIRST)
    held_answer = await prober.wait_for(
        lambda a: a.sent >= two.at and a.latency_s > threshold,
        config.join_timeout,
        check=env.check,
    )
    held = prober.held_s(two.at, time.monotonic())
    progress("join: stopping the second order_entry")
    killed = await _stop_second(env)
    return SecondJoin(
        method="probing",
        process=ProcessJoin(
            spawn_to_fill_s=held_answer.answered - two.at if held_answer else None,
            spawn_to_assigned_s=None,
            assigned_to_warm_s=None,
            partitions=None,
        ),
        rebalanced_s=None,
        usual_ms=usual * 1000,
        held_max_ms=held * 1000,
        takeover_s=None,
        takeover_fill_s=None,
        takeover_held_max_ms=0.0,
        note="order_entry writes no orders:meta: the second process is taken to serve when "
        f"the orders held by the rebalance (> {threshold:.1f}s) were answered again, by "
        "whichever process" + (f"; {killed}" if killed else ""),
    )


async def start_serving(env: OrderEnv, target: str) -> float:
    """Spawn ``target`` (order_entry or the echo) on ``env``; seconds to its first fill."""
    driver = env.drivers[target]
    driver.resume()
    symbols = list(probe_symbols(env.ctx.tradable, env.ctx.config.partitions).values())
    prober = Prober(driver, symbols)
    try:
        if target == ORDER_ENTRY:
            spawned = await env.spawn_order_entry(FIRST, ledger=FIRST)
        else:
            spawned = await env.spawn_echo()
        await prober.start()
        fill = await _first_fill(prober, spawned, env, None, spawned.at)
    finally:
        await prober.stop()
        driver.forget()
        driver.pause()
    if fill is None:
        raise RuntimeStartError(
            f"{target} filled no order within {env.ctx.config.join_timeout:.0f}s of its start "
            f"(see {spawned.proc.log_path})"
        )
    return fill.answered - spawned.at
