"""``marketfeed up``: the whole system on one machine, embedded broker and Redis included.

Start order: broker, one Redis per consuming service (with an append-only file in the run
directory), topics, the state file read commands use, then the publisher, the consuming
services and the simulated order flow as child processes (the same ``python -m`` entry points
that run in production). Each child is launched from its config dataclass
(``common.config.to_argv``), every setting on its command line, so it runs exactly the config
``up`` built for it, in a session of its own: a Ctrl-C in the terminal reaches ``up`` alone.
While it runs, ``supervisor`` watches every child, servers included; on Ctrl-C, SIGTERM,
SIGHUP, ``--duration`` or a death, ``shutdown`` stops the parts in reverse order, one line
each on stderr (a second Ctrl-C kills what is left). Every child is started with a
parent-death signal, so even a killed ``up`` leaves nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.cli import EXIT_INTERRUPTED, install_stop_signals
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
from common.errors import ConfigError
from common.feedsign import FeedKeys, write_key_file
from common.generations.naming import HistoryMode, history_mode
from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.kafkasec import security_fields
from common.lifecycle import cancel_and_wait
from common.logs import also_to_file, redact_url, setup_logging
from common.runtime import ChildProcess, EmbeddedStack
from feed_publisher.universe import MAX_SYMBOLS
from marketfeed.console import Console
from marketfeed.endpoints import Listener, printed_urls
from marketfeed.launches import API, ORDER_FLOW, Launch, children
from marketfeed.shutdown import Part, Stage, stop_parts
from marketfeed.state import FEED_KEY_FILE, UpState, remove_state, state_dir
from marketfeed.supervisor import Ending, Outcome, Supervisor
from order_flow.config import account_count
from order_flow.mix import account_names

log = logging.getLogger("marketfeed.up")

CONSUMING_SERVICES = ("order_entry", "portfolio")
STAGES = {
    # The API is a client of order_entry, like the order flow: it goes first.
    API: Stage.ORDER_FLOW,
    ORDER_FLOW: Stage.ORDER_FLOW,
    "order_entry": Stage.SERVICES,
    "portfolio": Stage.SERVICES,
    "publisher": Stage.PUBLISHER,
}
# Symbols order_entry trades and portfolio watches by default (fewer if there are fewer).
TRADABLE = 50
WATCHLIST = 10
# Seconds a child gets to stop before it is killed. Generous: a kill is a bug to look into.
CHILD_STOP_S = 10.0
# ... when the broker or a Redis server it needs is gone: it may wait on it, and cannot lose
# more than it has lost already.
LOST_STOP_S = 2.0
# Seconds the children get to say where they listen (imports, then the port): a busy machine.
LISTEN_TIMEOUT_S = 60.0


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
        None,
        help="where child processes write their logs and the Redis servers their data "
        "(default: a new run directory)",
    )
    tls: bool = setting(
        False,
        help="put a TLS terminator in front of the broker: every client, the services "
        "included, connects over TLS with a certificate of the run's CA (in the run "
        "directory's pki/; the CLI finds them in up.json)",
    )
    tradable: int | None = setting(
        None,
        help=f"order_entry trades the first N symbols, at most --symbols (default: {TRADABLE}, "
        "or --symbols if fewer)",
        check=positive,
    )
    watchlist: int | None = setting(
        None,
        help=f"portfolio watches the first N symbols, at most --symbols (default: {WATCHLIST}, "
        "or --symbols if fewer)",
        check=non_negative,
    )
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
    server_timeout: float = setting(
        60.0,
        help="seconds the broker or a Redis server may go without answering (frozen, hung) "
        "before up gives up on it: the broker stops everything, a Redis server is restarted",
        check=positive,
    )
    log_level: str = setting("WARNING", help="log level of `up` itself", check=known_log_level)

    def __post_init__(self) -> None:
        for name in ("tradable", "watchlist"):
            value = getattr(self, name)
            if value is not None and value > self.symbols:
                raise ConfigError(f"--{name}={value}: must be at most --symbols ({self.symbols})")

    @property
    def tradable_count(self) -> int:
        return min(TRADABLE, self.symbols) if self.tradable is None else self.tradable

    @property
    def watchlist_count(self) -> int:
        return min(WATCHLIST, self.symbols) if self.watchlist is None else self.watchlist


async def _alive() -> bool:
    return True


class Up:
    """Owns every process of a local run and stops them in reverse order."""

    def __init__(self, config: UpConfig) -> None:
        self.config = config
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = config.log_dir or state_dir() / "runs" / f"{stamp}-{os.getpid()}"
        # The namespace of this run's consumer groups: a service started by hand next to it
        # joins them only when given it (--group).
        self.group = f"marketfeed.up-{stamp}-{os.getpid()}"
        self.kafka = KafkaSettings(bootstrap="127.0.0.1:1", partitions=config.partitions)
        # The run's feed key: the publisher signs with it, the caches verify with it.
        self.feed_keys = FeedKeys((secrets.token_bytes(32),))
        # The API's token: every request to it must carry it (the API is reachable by every
        # user of the machine); read commands and `marketfeed dashboard` find it in up.json.
        self.api_token = secrets.token_urlsafe(32)
        self.parts: dict[str, Part] = {}
        self.listeners: list[Listener] = []
        self.urls: dict[str, str] = {}  # child -> where it listens (/metrics; the API's root)
        self.console = Console(log=_events_log())

    async def run(self, stop: asyncio.Event, force: asyncio.Event) -> int:
        """Start everything, supervise until something ends the run, stop; the exit code."""
        self._open_log_dir()
        servers = EmbeddedStack(
            services=CONSUMING_SERVICES,
            log_dir=self.log_dir,
            data_dir=self.log_dir,
            passwords=True,
            tls_dir=self.log_dir / "pki" if self.config.tls else None,
        )
        outcome: Outcome | None = None
        try:
            starting = asyncio.create_task(self._start(servers))
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(stopper)
            if not starting.done():
                await cancel_and_wait(starting)  # Ctrl-C during start-up: stop what started
                outcome = Outcome(Ending.REQUESTED)
                self._announce(outcome)
            else:
                starting.result()
                supervisor = Supervisor(
                    parts=self.parts,
                    servers=servers,
                    console=self.console,
                    topics=self.kafka.topics,
                    status_interval=self.config.status_interval,
                    server_timeout=self.config.server_timeout,
                    on_restart=lambda: self._write_state(servers),
                )
                outcome = await supervisor.run(stop, self.config.duration, self._announce)
        finally:
            remove_state(pid=os.getpid())
            # No outcome: the start-up failed, and its error is said once everything stopped.
            forced = await self._stop(outcome or Outcome(Ending.START_FAILED), force)
            await servers.stop()
        code = EXIT_INTERRUPTED if forced else (outcome or Outcome(Ending.START_FAILED)).code
        log.info("exit code %d", code)
        return code

    def _open_log_dir(self) -> None:
        try:
            self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            handler = also_to_file(self.log_dir / "up.log")
        except OSError as exc:
            flag = "--log-dir" if self.config.log_dir else "the run directory (--log-dir)"
            raise ConfigError(
                f"{flag} {self.log_dir}: cannot write there ({exc.strerror or exc})"
            ) from None
        _events_log().addHandler(handler)

    async def _start(self, servers: EmbeddedStack) -> None:
        cfg = self.config
        await servers.start()
        if servers.broker is not None:
            self.parts[servers.broker.name] = Part(
                servers.broker.name, servers.broker, Stage.BROKER
            )
        if servers.tls is not None:
            self.parts[servers.tls.name] = Part(servers.tls.name, servers.tls, Stage.BROKER)
        for server in servers.redis.values():
            self.parts[server.name] = Part(server.name, server, Stage.REDIS)
        self.kafka = KafkaSettings(
            bootstrap=servers.bootstrap,
            partitions=cfg.partitions,
            **security_fields(servers.security),
        )
        topics = self.kafka.topics
        # The order topics, so that the status line and `marketfeed order` find them before
        # order_entry has created them itself. The market-data topics are the publisher's to
        # create: which ones depends on --md-history.
        await ensure_topics(
            self.kafka,
            [
                TopicSpec(topics.orders_commands, cfg.partitions),
                TopicSpec(topics.orders_events, cfg.partitions),
            ],
        )
        launches = children(
            self.config,
            servers,
            topic_prefix=self.kafka.topic_prefix,
            group=self.group,
            run_dir=self.log_dir,
            feed_keys=self.feed_keys,
            api_token=self.api_token,
        )
        # For read commands that verify what they fetch from the publisher (`quote`).
        write_key_file(self.log_dir / FEED_KEY_FILE, self.feed_keys)
        for launch in launches:
            await self._start_child(launch)
        # All started first: their imports run side by side, not one after the other.
        self.urls = await printed_urls(self.listeners, timeout=LISTEN_TIMEOUT_S)
        self._write_state(servers)
        self._print_banner(servers)

    def _announce(self, outcome: Outcome) -> None:
        """Say why everything stops, as soon as it is known."""
        ending = outcome.ending
        if ending in (Ending.CHILD_EXITED, Ending.BROKER_LOST, Ending.REDIS_LOST):
            self.console.event(f"{outcome.message}; stopping everything", level=logging.ERROR)
            _print_tail(self.console, outcome.log_path)
        elif ending is Ending.DURATION:
            self.console.event(f"--duration {self.config.duration:g}s reached; stopping everything")
        elif ending is Ending.REQUESTED:
            self.console.event("stopping everything (Ctrl-C again to kill at once)")

    async def _stop(self, outcome: Outcome, force: asyncio.Event) -> bool:
        """Stop every part, in stages; True if a second Ctrl-C forced it."""
        parts = list(self.parts.values())
        if outcome.ending is Ending.BROKER_LOST:
            # Nothing flows any more: every child at once rather than in turn, and a kill
            # after a short grace is no surprise (they may wait on the broker to flush).
            parts = [_together(p) for p in parts]
            return await stop_parts(
                parts, self.console, force, grace=LOST_STOP_S, why="the broker is gone"
            )
        if outcome.ending is Ending.REDIS_LOST:
            return await stop_parts(
                parts, self.console, force, grace=LOST_STOP_S, why="a Redis server is gone"
            )
        return await stop_parts(parts, self.console, force)

    async def _start_child(self, launch: Launch) -> None:
        log_path = self.log_dir / f"{launch.name}.log"
        child = ChildProcess(
            name=launch.name,
            argv=[sys.executable, "-m", launch.module, *to_argv(launch.config)],
            # Secrets go by environment, never on a command line others can read.
            env={**os.environ, **to_env(launch.config)},
            ready=_alive,
            log_path=log_path,
            stop_timeout=CHILD_STOP_S,
        )
        # Registered before it starts: a start that fails half-way still stops it.
        self.parts[launch.name] = Part(launch.name, child, STAGES[launch.name])
        if launch.has_metrics or launch.name == API:
            listener = Listener.before_start(launch.name, child, log_path, api=launch.name == API)
            self.listeners.append(listener)
        await child.start()

    def _write_state(self, servers: EmbeddedStack) -> None:
        UpState(
            pid=os.getpid(),
            bootstrap=servers.bootstrap,
            topic_prefix=self.kafka.topic_prefix,
            partitions=self.config.partitions,
            redis={s: servers.redis_url(s) for s in CONSUMING_SERVICES},
            log_dir=str(self.log_dir),
            group=self.group,
            feed_key_file=str(self.log_dir / FEED_KEY_FILE),
            processes={name: part.process.pid or 0 for name, part in self.parts.items()},
            api=self.urls.get(API, ""),
            api_token=self.api_token,
            metrics=self._metrics_urls(),
            kafka_security={
                k: str(v) for k, v in security_fields(servers.security).items() if v is not None
            },
        ).write()

    def _metrics_urls(self) -> dict[str, str]:
        """Every process's /metrics; the API serves its own on its port."""
        urls = {name: self.urls[name] for name in self.parts if name in self.urls}
        if API in urls:
            urls[API] += "metrics"
        return urls

    def _print_banner(self, servers: EmbeddedStack) -> None:
        lines = [
            f"marketfeed up: broker {servers.bootstrap} (Kafka protocol; topics "
            f"{self.kafka.topics.quotes}, {self.kafka.topics.trades}; "
            f"{self.config.partitions} partitions; history: {self._history()})",
            *(
                [f"  tls         client certificates of the run's CA in {servers.tls_dir}"]
                if servers.tls is not None
                else []
            ),
            *(f"  redis {s:<12} {redact_url(servers.redis_url(s))}" for s in CONSUMING_SERVICES),
            f"  orders      {self._order_flow_banner()}",
            f"  api         {self.urls.get(API, '(not running)')} (needs the run's token: "
            "`marketfeed dashboard` prints the dashboard's login link; API docs at /docs)",
            *(f"  metrics     {name:<12} {url}" for name, url in self._metrics_urls().items()),
            f"  groups      {self.group}.* (a service joins them with --group {self.group})",
            f"  logs        {self.log_dir}",
            "  Ctrl-C stops everything",
        ]
        self.console.show("\n".join(lines))

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


def _together(part: Part) -> Part:
    """``part`` in one stage with every other child (the servers keep theirs)."""
    stage = Stage.SERVICES if part.stage < Stage.REDIS else part.stage
    return Part(part.name, part.process, stage)


def _events_log() -> logging.Logger:
    # What the console says goes to up.log only: on stderr the console has said it already.
    events = logging.getLogger("marketfeed.up.events")
    events.propagate = False
    events.setLevel(logging.INFO)
    return events


def _print_tail(console: Console, path: Path | None, lines: int = 8) -> None:
    if path is None or not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        console.detail(line)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, UpConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(UpConfig, args)
    setup_logging(config.log_level)
    stop, force = asyncio.Event(), asyncio.Event()
    # SIGHUP too: a closed terminal is a stop, not the parent-death kill of every child.
    install_stop_signals(stop, force=force, signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    return await Up(config).run(stop, force)
