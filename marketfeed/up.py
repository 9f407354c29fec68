"""``marketfeed up``: the whole system on one machine, embedded broker and Redis included.

Start order: broker, one Redis per consuming service, topics, the state file read commands use,
then the publisher, the consuming services and the simulated order flow as child processes (the
same ``python -m`` entry points that run in production). Each child is launched from its config
dataclass (``common.config.to_argv``), every setting on its command line, so it runs exactly the
config ``up`` built for it. Stop order is the reverse, so the order flow stops before the
services that answer it, on Ctrl-C, SIGTERM, ``--duration``, or the death of any child. Every
child server is started with a parent-death signal, so even a killed ``up`` leaves nothing
running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.cli import EXIT_FAILURE, EXIT_OK, install_stop_signals
from common.config import (
    add_arguments,
    build,
    in_range,
    known_log_level,
    non_negative,
    positive,
    setting,
    to_argv,
    to_env,
)
from common.errors import MarketfeedError
from common.generations.naming import HistoryMode, history_mode
from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.lifecycle import cancel_all, cancel_and_wait
from common.logs import setup_logging
from common.retry import Retry
from common.runtime import ChildProcess, EmbeddedStack
from common.runtime.process import rss_bytes
from common.watermarks import WatermarkReader
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import MAX_SYMBOLS, universe
from marketfeed.state import UpState, remove_state, state_dir
from marketfeed.status import StatusLine
from order_entry.config import OrderEntryConfig
from order_flow.config import OrderFlowConfig, account_count
from order_flow.mix import account_names
from portfolio.config import PortfolioConfig

log = logging.getLogger("marketfeed.up")

CONSUMING_SERVICES = ("order_entry", "portfolio")
ORDER_FLOW = "order_flow"


def _rate_or_off(value: float) -> str | None:
    # 0 is allowed (no order flow); inf would break the pacer's arithmetic.
    return None if math.isfinite(value) and value >= 0 else "must be a finite number >= 0"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpConfig:
    duration: float | None = setting(
        None, help="stop after this many seconds (default: run until Ctrl-C)", check=positive
    )
    symbols: int = setting(500, help="number of simulated symbols", check=in_range(1, MAX_SYMBOLS))
    rate: float = setting(5000.0, help="publisher target messages per second", check=positive)
    seed: int | None = setting(None, help="random seed of the simulated market")
    partitions: int = setting(
        16, help="partitions of quote, trade and order topics", check=positive
    )
    log_dir: Path | None = setting(
        None, help="where child processes write their logs (default: a new run directory)"
    )
    tradable: int = setting(50, help="order_entry trades the first N symbols", check=positive)
    watchlist: int = setting(10, help="portfolio watches the first N symbols", check=non_negative)
    orders_rate: float = setting(
        2.0,
        help="simulated orders per second sent to order_entry (0: no order flow)",
        check=_rate_or_off,
    )
    accounts: int = setting(
        10, help="simulated accounts of the order flow, acct-01 .. acct-NN", check=account_count
    )
    md_history: str = setting(
        HistoryMode.AUTO.value,
        help="how the publisher bounds market-data history: generations (md.quotes.gN, rolled "
        "and deleted), retention (one topic forever), or auto (generations on the embedded "
        "broker)",
        check=history_mode,
        metavar="auto|generations|retention",
    )
    status_interval: float = setting(1.0, help="seconds between status lines", check=positive)
    log_level: str = setting("WARNING", help="log level of `up` itself", check=known_log_level)


async def _alive() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Launch:
    """One child of ``up``: its name (in up.json, and its log file), module and config."""

    name: str
    module: str  # run as ``python -m module``
    config: Any  # a settings dataclass of that module, turned into its flags by to_argv()


class Up:
    """Owns every process of a local run and stops them in reverse order."""

    def __init__(self, config: UpConfig) -> None:
        self.config = config
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = config.log_dir or state_dir() / "runs" / f"{stamp}-{os.getpid()}"
        self.kafka = KafkaSettings(bootstrap="127.0.0.1:1", partitions=config.partitions)
        self.children: dict[str, ChildProcess] = {}
        self.broker_pid: int | None = None  # for its memory on the status line

    async def run(self, stop: asyncio.Event) -> int:
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            servers = EmbeddedStack(services=CONSUMING_SERVICES, log_dir=self.log_dir)
            await stack.enter_async_context(servers)
            self.kafka = KafkaSettings(bootstrap=servers.bootstrap, partitions=cfg.partitions)
            self.broker_pid = servers.broker.pid if servers.broker else None
            topics = self.kafka.topics
            # The order topics, so that the status line and `marketfeed order` find them before
            # order_entry has created them itself. The market-data topics are the publisher's
            # to create: which ones depends on --md-history.
            await ensure_topics(
                self.kafka,
                [
                    TopicSpec(topics.orders_commands, cfg.partitions),
                    TopicSpec(topics.orders_events, cfg.partitions),
                ],
            )
            for launch in self._launches(servers):
                await self._start_child(stack, launch)

            state = UpState(
                pid=os.getpid(),
                bootstrap=servers.bootstrap,
                topic_prefix=self.kafka.topic_prefix,
                partitions=cfg.partitions,
                redis={s: servers.redis_url(s) for s in CONSUMING_SERVICES},
                log_dir=str(self.log_dir),
                processes={
                    p.name: p.pid or 0 for p in [*servers.processes, *self.children.values()]
                },
            )
            state.write()
            stack.callback(remove_state)
            self._print_banner(servers)
            return await self._supervise(stop)

    def _launches(self, servers: EmbeddedStack) -> list[Launch]:
        """Each child's config: up's own settings, and the environment for everything else.

        So ``MARKETFEED_*`` variables set for ``up`` tune the children (a session timeout, a
        log level). What up decides is passed as overrides, which ``build()`` applies before it
        looks at the environment: where the broker and caches are, the sizes up was given
        (up's ``MARKETFEED_TRADABLE`` and ``MARKETFEED_WATCHLIST`` are counts, the services'
        are lists, and are never read as theirs), and no duration for the publisher (up's
        ``--duration`` is up's own; a publisher stopping by itself would look like a death).
        """
        cfg = self.config
        env = os.environ
        kafka: dict[str, Any] = {
            "bootstrap": servers.bootstrap,
            "topic_prefix": self.kafka.topic_prefix,
            "partitions": cfg.partitions,
        }
        tradable_file = self._write_tradable_file()
        watchlist = tuple(universe(min(cfg.watchlist, cfg.symbols)))
        order_entry = build(
            OrderEntryConfig,
            environ=env,
            **kafka,
            redis_url=servers.redis_url("order_entry"),
            tradable=(),
            tradable_file=tradable_file,
        )
        launches = [
            Launch(
                "publisher",
                "feed_publisher",
                build(
                    PublisherConfig,
                    environ=env,
                    **kafka,
                    symbols=cfg.symbols,
                    rate=cfg.rate,
                    seed=cfg.seed,
                    duration=None,
                    md_history=cfg.md_history,
                ),
            ),
            Launch("order_entry", "order_entry", order_entry),
            Launch(
                "portfolio",
                "portfolio",
                build(
                    PortfolioConfig,
                    environ=env,
                    **kafka,
                    redis_url=servers.redis_url("portfolio"),
                    watchlist=watchlist,
                    watchlist_file=None,
                ),
            ),
        ]
        if cfg.orders_rate > 0:
            # It trades order_entry's tradable set, priced from order_entry's cache, and its
            # bad orders are bad by order_entry's own limits.
            flow = build(
                OrderFlowConfig,
                environ=env,
                **kafka,
                orders_rate=cfg.orders_rate,
                accounts=cfg.accounts,
                seed=cfg.seed,
                tradable=(),
                tradable_file=tradable_file,
                redis_url=order_entry.redis_url,
                redis_prefix=order_entry.redis_prefix,
                max_qty=order_entry.max_qty,
                limit_band=order_entry.limit_band,
            )
            launches.append(Launch(ORDER_FLOW, "order_flow", flow))
        return launches

    def _write_tradable_file(self) -> Path:
        # A file rather than a flag: the list can be long, and order_entry and the order flow
        # read the same one.
        cfg = self.config
        path = self.log_dir / "tradable.txt"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(universe(min(cfg.tradable, cfg.symbols))) + "\n")
        return path

    async def _start_child(self, stack: contextlib.AsyncExitStack, launch: Launch) -> None:
        child = ChildProcess(
            name=launch.name,
            argv=[sys.executable, "-m", launch.module, *to_argv(launch.config)],
            # Secrets go by environment, never on a command line others can read.
            env={**os.environ, **to_env(launch.config)},
            ready=_alive,
            log_path=self.log_dir / f"{launch.name}.log",
            stop_timeout=10.0,
        )
        await child.start()
        stack.push_async_callback(child.stop)
        self.children[launch.name] = child

    def _print_banner(self, servers: EmbeddedStack) -> None:
        lines = [
            f"marketfeed up: broker {servers.bootstrap} (Kafka protocol; topics "
            f"{self.kafka.topics.quotes}, {self.kafka.topics.trades}; "
            f"{self.config.partitions} partitions; history: {self._history()})",
            *(f"  redis {s:<12} {servers.redis_url(s)}" for s in CONSUMING_SERVICES),
            f"  orders      {self._order_flow_banner()}",
            f"  logs        {self.log_dir}",
            "  Ctrl-C stops everything",
        ]
        print("\n".join(lines), flush=True)

    def _history(self) -> str:
        mode = HistoryMode(self.config.md_history)
        if mode is HistoryMode.RETENTION:
            return "one topic each, retention"
        # The embedded broker keeps everything: auto means generations here.
        return f"generations {self.kafka.topics.quotes}.gN, rolled and deleted"

    def _order_flow_banner(self) -> str:
        cfg = self.config
        topic = self.kafka.topics.orders_commands
        if cfg.orders_rate <= 0:
            return f"no simulated order flow (--orders-rate 0); `marketfeed order` sends to {topic}"
        names = account_names(cfg.accounts)
        return (
            f"{cfg.orders_rate:g}/s simulated from {names[0]}..{names[-1]} on {topic} "
            "(`marketfeed positions` shows where they stand)"
        )

    async def _supervise(self, stop: asyncio.Event) -> int:
        """Print status until stop, the duration, or a child's death; return the exit code."""
        deaths = {
            asyncio.create_task(child.wait(), name=name): child
            for name, child in self.children.items()
        }
        stopper = asyncio.create_task(stop.wait())
        status = asyncio.create_task(self._status_loop())
        try:
            done, _ = await asyncio.wait(
                [*deaths, stopper],
                timeout=self.config.duration,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            await cancel_all([*deaths, stopper])
            await cancel_and_wait(status)
        if sys.stdout.isatty():
            print()
        for task in done:
            child = deaths.get(task)
            if child is not None and not task.cancelled():
                print(
                    f"marketfeed up: {child.name} exited with code {task.result()}; "
                    f"stopping everything (log: {child.log_path})",
                    file=sys.stderr,
                )
                _print_tail(child.log_path)
                return EXIT_FAILURE
        return EXIT_OK

    async def _status_loop(self) -> None:
        status = StatusLine(self.kafka.topics, started=time.monotonic())
        # A broker that stops answering pauses the line: one warning, one line when it is back.
        broker = Retry(
            f"the broker at {self.kafka.bootstrap}", errors=(MarketfeedError,), logger=log
        )
        tty = sys.stdout.isatty()
        async with WatermarkReader(self.kafka.bootstrap) as reader:

            async def look() -> tuple[Any, dict[str, Any]]:
                feed = {b: await reader.generation_marks(b) for b in self.kafka.topics.market_data}
                return await reader.high_watermarks(status.watched), feed

            while True:
                await asyncio.sleep(self.config.status_interval)
                marks, feed = await broker.run(look, what="the status line")
                line = status.line(
                    marks, feed, time.monotonic(), broker_rss_bytes=rss_bytes(self.broker_pid)
                )
                print(("\r\x1b[K" + line) if tty else line, end="" if tty else "\n", flush=True)


def _print_tail(path: Path | None, lines: int = 8) -> None:
    if path is None or not path.exists():
        return
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    for line in tail:
        print(f"    {line}", file=sys.stderr)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, UpConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(UpConfig, args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    install_stop_signals(stop)
    return await Up(config).run(stop)
