"""``marketfeed lag [--watch]``: how far behind the feed each service's quote cache is.

For each consuming service and each partition it is assigned: offset lag against the broker's
exact high watermark, time lag, the rate records arrive and are applied, and the symbols of
interest whose cached quote is oldest; and whether the consumer is live, idle (caught up, the
feed is quiet), stalled or down. The rules are in ``marketfeed.lag.rules``, the sampling in
``marketfeed.lag.monitor``; this module is the command.

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
from typing import TextIO

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
from marketfeed.lag.monitor import LagMonitor, Report
from marketfeed.lag.render import as_json, healthy, render
from marketfeed.lag.rules import Thresholds
from marketfeed.targets import ALL_SERVICES, TargetSettings, known_service_or_all

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
        shown = False
        while True:
            # The next tick on the schedule; a slow round skips ticks rather than piling up.
            elapsed = time.monotonic() - start
            wake = start + (int(elapsed / settings.interval) + 1) * settings.interval
            if deadline is not None and wake > deadline:
                if shown:
                    break
                # A baseline slower than --duration (a loaded machine) still shows one report.
                wake = time.monotonic()
            shown = True
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
