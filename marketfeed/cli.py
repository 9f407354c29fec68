"""``marketfeed``: one command with a subcommand per thing a user does.

Each subcommand is a module with ``configure(parser)`` and ``async run(args) -> int``, named here
by its dotted path and imported only when that subcommand is run: ``marketfeed quote`` loads what
a quote lookup needs (no faust, no numpy), and ``marketfeed --help`` lists every subcommand
without importing any. ``marketfeed publish`` and ``python -m feed_publisher`` are the same code
with the same flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from common.cli import EXIT_USAGE, OneLineParser, run_async


class Entry(Protocol):
    """What the module of a subcommand provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    async def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    module: str  # dotted path of its Entry module, imported only when the command runs
    help: str

    def load(self) -> Entry:
        return cast(Entry, importlib.import_module(self.module))


COMMANDS = [
    Command(
        "up",
        "marketfeed.up",
        "run everything locally: embedded broker, Redis per service, publisher, consumers",
    ),
    Command(
        "publish",
        "feed_publisher.cli",
        "run only the simulated-market publisher against any Kafka cluster",
    ),
    Command(
        "order-entry",
        "order_entry.cli",
        "run only order_entry (its quote cache) against any broker and Redis",
    ),
    Command(
        "portfolio",
        "portfolio.cli",
        "run only portfolio (its quote cache) against any broker and Redis",
    ),
    Command(
        "order-flow",
        "order_flow.cli",
        "run only the simulated order flow (random orders from simulated accounts) against "
        "any broker",
    ),
    Command(
        "api",
        "http_api.cli",
        "run the HTTP API and live dashboard over the services' caches (quotes, orders, "
        "positions, lag, a quote stream)",
    ),
    Command(
        "lag",
        "marketfeed.lag.command",
        "offset lag, time lag, consume rate and freshness of each service's cache (--watch: live)",
    ),
    Command("quote", "marketfeed.quote", "print cached quotes of a service, with their age"),
    Command(
        "dashboard",
        "marketfeed.dashboard",
        "the login link of the running up's dashboard (the API wants the run's token); --open",
    ),
    Command(
        "compose-secrets",
        "marketfeed.compose_secrets",
        "make the secrets compose.yaml mounts: feed key, Kafka TLS and SCRAM users, Redis "
        "passwords",
    ),
    Command(
        "order",
        "marketfeed.order",
        "send one order (buy|sell SYMBOL QTY, market or --limit IOC) to order_entry and print "
        "its outcome: FILLED, CANCELLED or REJECTED with the reason (exit 1 unless filled or "
        "cancelled)",
    ),
    Command(
        "positions",
        "marketfeed.positions",
        "positions per account kept by portfolio from fills, marked to the mid of its cached "
        "quote: qty, average price, mark and its age, unrealised and realised P&L",
    ),
]

BENCH = "bench"
BENCH_HELP = "benchmarks that print figures beside a baseline"

# `marketfeed bench WHAT`: one benchmark per component.
BENCHES = [
    Command(
        "access",
        "marketfeed.bench.access.command",
        "a quote from the cache, by request/response over Kafka and over HTTP side by side, "
        "with the cache's cost; orders over HTTP; SSE fan-out of the API",
    ),
    Command(
        "consumers",
        "marketfeed.bench.consumers.command",
        "consumer lag, publish->readable latency and throughput: the caching consumer beside "
        "a naive one and a bare consume loop",
    ),
    Command(
        "orders",
        "marketfeed.bench.orders.command",
        "orders/s and command->event latency through order_entry beside a bare echo consumer, "
        "with quotes flowing; join + warm time of a new order_entry",
    ),
    Command(
        "soak",
        "marketfeed.bench.soak.command",
        "the whole stack for a long time (default an hour at 10k msg/s), sampled: e2e latency, "
        "lag, memory, CPU, generations, STALE_QUOTE rejections; whether each stayed flat",
    ),
    Command(
        "metrics",
        "marketfeed.bench.metrics",
        "what Prometheus metrics cost: publisher and cache throughput with metrics on vs off",
    ),
    Command(
        "tls",
        "marketfeed.bench.tls",
        "round-trip latency (produce -> consumed) directly on the embedded broker and through "
        "the TLS terminator of `up --tls`, side by side",
    ),
    Command(
        "publisher",
        "marketfeed.bench.publisher",
        "publisher throughput beside a bare aiokafka send() loop, acknowledged msg/s",
    ),
]


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        # importlib.metadata costs ~70 modules; every other run of the command would pay them.
        from importlib.metadata import version  # noqa: PLC0415

        print(f"marketfeed {version('marketfeed')}")  # on stdout, as argparse's own version
        parser.exit()


def chosen(argv: Sequence[str]) -> tuple[str, ...]:
    """The subcommand ``argv`` names: ``("quote",)``, ``("bench", "orders")`` or ``()``.

    Its leading words: no flag of ``marketfeed`` or ``marketfeed bench`` takes a value, so the
    first word is the command, and after ``bench`` the next one is the benchmark.
    """
    words = [a for a in argv if not a.startswith("-")]
    return tuple(words[:2]) if words[:1] == [BENCH] else tuple(words[:1])


def build_parser(argv: Sequence[str] = ()) -> OneLineParser:
    """Every subcommand with its help; the flags only of the one ``argv`` names."""
    names = chosen(argv)
    parser = OneLineParser(
        prog="marketfeed",
        description="A real-time market-data feed on Kafka with caching consumers.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    _add_commands(sub, COMMANDS, names[:1])
    bench = sub.add_parser(BENCH, help=BENCH_HELP, description=BENCH_HELP)
    bench_sub = bench.add_subparsers(dest=BENCH, metavar="WHAT", parser_class=OneLineParser)
    _add_commands(bench_sub, BENCHES, names[1:])
    return parser


def _add_commands(
    sub: argparse._SubParsersAction[OneLineParser],
    commands: Sequence[Command],
    chosen: Sequence[str],
) -> None:
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.name in chosen:
            entry = command.load()
            entry.configure(p)
            p.set_defaults(_entry=entry)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    entry: Entry | None = getattr(args, "_entry", None)
    if entry is None:
        parser.print_help()
        return EXIT_USAGE
    prog = " ".join(["marketfeed", args.command, *([args.bench] if BENCH in args else [])])
    for name in ("_entry", "command", BENCH):
        if name in args:
            delattr(args, name)
    return run_async(prog, lambda: entry.run(args))
