"""``marketfeed lag [--watch]``: how far behind the feed each service's quote cache is.

For each consuming service and each partition it is assigned: offset lag against the broker's
exact high watermark (``common/watermarks.py``; never the cache's own view of it, never the
committed offset), time lag, the rate records arrive and are applied, and the symbols of
interest whose cached quote is oldest; and whether the consumer is live, idle (caught up, the
feed is quiet), stalled or down. The rules are in ``marketfeed/lagcalc.py``; this module takes
the samples and prints them.

Reads only. The one-shot report takes two samples ``--interval`` apart (rates and stalls need
two) and exits 1 if a service is stalled or down; ``--watch`` refreshes until Ctrl-C or
``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TextIO

from common.cache.reader import QuoteReader
from common.cli import EXIT_FAILURE, EXIT_OK, install_stop_signals
from common.config import (
    add_arguments,
    build,
    known_log_level,
    non_negative,
    positive,
    setting,
)
from common.errors import ConfigError, MarketfeedError
from common.logs import setup_logging
from common.topics import Topics
from common.watermarks import WatermarkReader
from marketfeed.lagcalc import (
    DOWN,
    STALLED,
    CacheSample,
    LagTracker,
    PartitionSample,
    ServiceLag,
    Thresholds,
    worst_fresh,
)
from marketfeed.targets import ALL_SERVICES, Target, TargetSettings, known_service_or_all

_CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True, slots=True, kw_only=True)
class LagSettings(TargetSettings):
    service: str = setting(
        ALL_SERVICES,
        help="the service to look at; `all`: every service of the running `marketfeed up` "
        "(with --redis-url: the one cache there)",
        check=known_service_or_all,
    )
    watch: bool = setting(False, help="refresh a live table every --interval until Ctrl-C")
    duration: float | None = setting(
        None, help="stop watching after this many seconds (implies --watch)", check=positive
    )
    interval: float = setting(
        1.0, help="seconds between samples; rates and stalls are measured over it", check=positive
    )
    json: bool = setting(False, help="print JSON (with --watch: one line per refresh)")
    worst: int = setting(
        5, help="how many worst-fresh symbols of interest to show per service", check=non_negative
    )
    stale_after: float = setting(
        3.0, help="a heartbeat older than this many seconds means stalled", check=positive
    )
    down_after: float = setting(
        5.0, help="no heartbeat for this many seconds means down", check=positive
    )
    stall_after: float = setting(
        1.0,
        help="records waiting and the applied offset stuck this many seconds means stalled",
        check=positive,
    )
    connect_timeout: float = setting(
        5.0, help="seconds to keep retrying an unreachable broker before giving up", check=positive
    )
    log_level: str = setting(
        "ERROR", help="log level (WARNING shows each retry)", check=known_log_level
    )

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            stale_after_s=self.stale_after,
            down_after_s=self.down_after,
            stall_after_s=self.stall_after,
        )


@dataclass(frozen=True, slots=True)
class Report:
    """What one look found for one cache, with where the cache is."""

    target: Target
    lag: ServiceLag

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.lag.as_dict(),
            "redis_url": self.target.redis_url,
            "redis_prefix": self.target.redis_prefix,
            "bootstrap": self.target.bootstrap,
        }


class LagMonitor:
    """Samples each target's cache and its broker; judges the samples with a LagTracker.

    Owns the connections it opens: ``start()`` connects to the brokers (with backoff, for
    ``connect_timeout``), ``stop()`` closes everything and is safe to call twice.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        thresholds: Thresholds | None = None,
        worst: int = 5,
        connect_timeout: float = 5.0,
    ) -> None:
        self.targets = list(targets)
        self.tracker = LagTracker(thresholds)
        self.worst = worst
        self._connect_timeout = connect_timeout
        self._caches: list[QuoteReader] = []
        self._brokers: dict[str, WatermarkReader] = {}
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        if self._caches:
            return
        try:
            for target in self.targets:
                reader = QuoteReader.from_url(target.redis_url, prefix=target.redis_prefix)
                self._stack.push_async_callback(reader.aclose)
                self._caches.append(reader)
            for bootstrap in dict.fromkeys(t.bootstrap for t in self.targets):
                broker = WatermarkReader(bootstrap, connect_timeout=self._connect_timeout)
                await broker.start()
                self._stack.push_async_callback(broker.stop)
                self._brokers[bootstrap] = broker
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._caches.clear()
        self._brokers.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def sample(self) -> list[CacheSample]:
        """One look at every cache; the broker's watermarks are read before the caches."""
        if not self._caches:
            raise RuntimeError("LagMonitor not started")
        metas = [await cache.meta() for cache in self._caches]
        topics = [
            meta.get("topic") or Topics(prefix=target.topic_prefix).quotes
            for target, meta in zip(self.targets, metas, strict=True)
        ]
        began = time.time_ns()
        marks: dict[tuple[str, str, int], int] = {}
        for bootstrap, broker in self._brokers.items():
            wanted = {
                topic
                for target, meta, topic in zip(self.targets, metas, topics, strict=True)
                if meta and target.bootstrap == bootstrap
            }
            if wanted:
                found = await broker.high_watermarks(sorted(wanted))
                marks |= {(bootstrap, tp.topic, tp.partition): hw for tp, hw in found.items()}
        samples = []
        for target, cache, meta, topic in zip(
            self.targets, self._caches, metas, topics, strict=True
        ):
            samples.append(await self._sample_one(target, cache, meta, topic, began, marks))
        return samples

    async def _sample_one(
        self,
        target: Target,
        cache: QuoteReader,
        meta: dict[str, str],
        topic: str,
        began: int,
        marks: dict[tuple[str, str, int], int],
    ) -> CacheSample:
        label = _label(target, meta)
        if not meta:
            return CacheSample(service=label, began_ns=began, now_ns=time.time_ns(), has_meta=False)
        states = await cache.partitions()
        interest = sorted(await cache.interest())
        cached = await cache.get_many(interest)
        meta = await cache.meta()  # again: the heartbeat as of now, not before the watermarks
        now = time.time_ns()
        # The latest sign of life: a restarted consumer writes started_ns before its first beat.
        beats = [int(meta[k]) for k in ("heartbeat_ns", "started_ns") if meta.get(k)]
        return CacheSample(
            service=label,
            began_ns=began,
            now_ns=now,
            heartbeat_ns=max(beats) if beats else None,
            partitions={
                p: PartitionSample(
                    partition=p,
                    high_watermark=marks.get((target.bootstrap, topic, p), 0),
                    applied_offset=s.applied_offset,
                    quote_ts_ns=s.quote_ts_ns,
                    kafka_ts_ms=s.kafka_ts_ms,
                )
                for p, s in states.items()
            },
            interest_count=len(interest),
            worst_fresh=worst_fresh(
                {s: (hit.age_s if hit is not None else None) for s, hit in cached.items()},
                self.worst,
            ),
        )

    async def update(self) -> list[Report]:
        """Take a sample of every cache and judge it against the previous one."""
        samples = await self.sample()
        return [
            Report(target, self.tracker.update(sample))
            for target, sample in zip(self.targets, samples, strict=True)
        ]

    async def measure(self, interval: float = 1.0) -> list[Report]:
        """A report from two samples ``interval`` apart (rates and stalls need two)."""
        await self.update()
        await asyncio.sleep(interval)
        return await self.update()


def _label(target: Target, meta: dict[str, str]) -> str:
    if target.service != ALL_SERVICES:
        return target.service
    return meta.get("service") or "cache"


# -- output ------------------------------------------------------------------------------------


def render(reports: Sequence[Report]) -> str:
    blocks = [_render_one(r) for r in reports]
    return "\n\n".join(blocks) if blocks else "no caches to look at"


def _render_one(report: Report) -> str:
    lag, target = report.lag, report.target
    head = f"{lag.service:<12} {lag.state.upper():<8} {lag.reason}"
    if lag.state == DOWN and lag.heartbeat_age_s is None and not lag.partitions:
        return f"{head}\n  looked in {target.redis_url} under {target.redis_prefix}meta"
    facts = [
        f"{lag.interest_count} symbols on {len(lag.partitions)} partitions",
        f"heartbeat {_seconds(lag.heartbeat_age_s)} ago",
        f"offset lag {lag.offset_lag:,}",
        f"time lag {_seconds(lag.time_lag_s)}",
        f"in {_rate(lag.in_rate)}/s",
        f"applied {_rate(lag.apply_rate)}/s",
    ]
    lines = [head, "  " + " · ".join(facts)]
    if lag.partitions:
        lines.append(
            f"  {'PART':>4} {'HIGH WM':>12} {'APPLIED':>12} {'OFFSET LAG':>10} "
            f"{'TIME LAG':>9} {'IN/S':>9} {'APPLIED/S':>9}  STATE"
        )
        for p in lag.partitions:
            applied = "-" if p.applied_offset is None else f"{p.applied_offset:,}"
            lines.append(
                f"  {p.partition:>4} {p.high_watermark:>12,} {applied:>12} {p.offset_lag:>10,} "
                f"{_seconds(p.time_lag_s):>9} {_rate(p.in_rate):>9} {_rate(p.apply_rate):>9}"
                f"  {p.state}"
            )
    if lag.worst_fresh:
        ages = ", ".join(
            f"{s.symbol} {'no quote' if s.age_s is None else _seconds(s.age_s)}"
            for s in lag.worst_fresh
        )
        lines.append(f"  worst fresh: {ages}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value == 0:
        return "0"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def as_json(reports: Sequence[Report], *, indent: int | None = None) -> str:
    return json.dumps(
        {"time_ns": time.time_ns(), "services": [r.as_dict() for r in reports]}, indent=indent
    )


def healthy(reports: Sequence[Report]) -> bool:
    return not any(r.lag.state in (STALLED, DOWN) for r in reports)


# -- the command -------------------------------------------------------------------------------


async def watch(monitor: LagMonitor, settings: LagSettings, out: TextIO | None = None) -> int:
    """Print a refreshed report every interval until Ctrl-C, SIGTERM or ``--duration``."""
    out = out or sys.stdout
    tty = out.isatty() and not settings.json
    round_limit = settings.connect_timeout + settings.interval
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        start = time.monotonic()
        deadline = start + settings.duration if settings.duration else None
        await monitor.update()  # the baseline: rates and stalls need a previous sample
        while True:
            # The next tick on the schedule; a slow round skips ticks rather than piling up.
            elapsed = time.monotonic() - start
            wake = start + (int(elapsed / settings.interval) + 1) * settings.interval
            if deadline is not None and wake > deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wake - time.monotonic()))
            if stop.is_set():
                break
            try:
                # One round must not freeze the screen: a broker that stops answering shows.
                async with asyncio.timeout(round_limit):
                    reports = await monitor.update()
            except MarketfeedError as exc:
                if not exc.retriable:
                    raise
                _emit(out, tty, settings, error=f"{str(exc).rstrip('.')}; retrying")
            except TimeoutError:
                _emit(out, tty, settings, error=f"no answer within {round_limit:g}s; retrying")
            else:
                _emit(out, tty, settings, reports=reports)
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _emit(
    out: TextIO,
    tty: bool,
    settings: LagSettings,
    *,
    reports: Sequence[Report] = (),
    error: str | None = None,
) -> None:
    """One refresh: a JSON line, or a block (after clearing the screen on a terminal)."""
    if settings.json:
        if error is not None:
            out.write(json.dumps({"time_ns": time.time_ns(), "error": error}) + "\n")
        else:
            out.write(as_json(reports) + "\n")
    else:
        stamp = time.strftime("%H:%M:%S")
        header = f"marketfeed lag · {stamp} · every {settings.interval:g}s · Ctrl-C stops"
        body = f"unavailable: {error}" if error is not None else render(reports)
        out.write((_CLEAR if tty else "") + f"{header}\n{body}\n" + ("" if tty else "\n"))
    out.flush()


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, LagSettings)


async def run(args: argparse.Namespace) -> int:
    settings = build(LagSettings, args)
    if not logging.getLogger().handlers:  # leave an embedding program's logging alone
        setup_logging(settings.log_level)
    if settings.down_after < settings.stale_after:
        raise ConfigError(
            f"--down-after={settings.down_after:g}: must be >= --stale-after "
            f"({settings.stale_after:g})"
        )
    targets = settings.resolve_all()
    try:
        async with LagMonitor(
            targets,
            thresholds=settings.thresholds,
            worst=settings.worst,
            connect_timeout=settings.connect_timeout,
        ) as monitor:
            if settings.watch or settings.duration is not None:
                return await watch(monitor, settings)
            reports = await monitor.measure(settings.interval)
        print(as_json(reports, indent=2) if settings.json else render(reports), flush=True)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's own final
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_OK if healthy(reports) else EXIT_FAILURE
