"""``marketfeed``: one command with a subcommand per thing a user does.

Each subcommand is a module with ``configure(parser)`` and ``async run(args) -> int``; this file
only wires them up, so that ``marketfeed publish`` and ``python -m feed_publisher`` are the same
code with the same flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import feed_publisher.cli
import marketfeed.bench.consumers.command
import marketfeed.bench.orders.command
import marketfeed.bench.publisher
import marketfeed.lag
import marketfeed.order
import marketfeed.positions
import marketfeed.quote
import marketfeed.up
import order_entry.cli
import portfolio.cli
from common.cli import EXIT_USAGE, OneLineParser, run_async


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Awaitable[int]]


COMMANDS = [
    Command(
        "up",
        "run everything locally: embedded broker, Redis per service, publisher, consumers",
        marketfeed.up.configure,
        marketfeed.up.run,
    ),
    Command(
        "publish",
        "run only the simulated-market publisher against any Kafka cluster",
        feed_publisher.cli.configure,
        feed_publisher.cli.run,
    ),
    Command(
        "order-entry",
        "run only order_entry (its quote cache) against any broker and Redis",
        order_entry.cli.configure,
        order_entry.cli.run,
    ),
    Command(
        "portfolio",
        "run only portfolio (its quote cache) against any broker and Redis",
        portfolio.cli.configure,
        portfolio.cli.run,
    ),
    Command(
        "lag",
        "offset lag, time lag, consume rate and freshness of each service's cache (--watch: live)",
        marketfeed.lag.configure,
        marketfeed.lag.run,
    ),
    Command(
        "quote",
        "print cached quotes of a service, with their age",
        marketfeed.quote.configure,
        marketfeed.quote.run,
    ),
    Command(
        "order",
        "send one order (buy|sell SYMBOL QTY, market or --limit IOC) to order_entry and print "
        "its outcome: FILLED, CANCELLED or REJECTED with the reason (exit 1 unless filled or "
        "cancelled)",
        marketfeed.order.configure,
        marketfeed.order.run,
    ),
    Command(
        "positions",
        "positions per account kept by portfolio from fills, marked to the mid of its cached "
        "quote: qty, average price, mark and its age, unrealised and realised P&L",
        marketfeed.positions.configure,
        marketfeed.positions.run,
    ),
]


# `marketfeed bench WHAT`: one benchmark per component.
BENCHES = [
    Command(
        "consumers",
        "consumer lag, publish->readable latency and throughput: the caching consumer beside "
        "a naive one and a bare consume loop",
        marketfeed.bench.consumers.command.configure,
        marketfeed.bench.consumers.command.run,
    ),
    Command(
        "orders",
        "orders/s and command->event latency through order_entry beside a bare echo consumer, "
        "with quotes flowing; join + warm time of a new order_entry",
        marketfeed.bench.orders.command.configure,
        marketfeed.bench.orders.command.run,
    ),
    Command(
        "publisher",
        "publisher throughput beside a bare aiokafka send() loop, acknowledged msg/s",
        marketfeed.bench.publisher.configure,
        marketfeed.bench.publisher.run,
    ),
]


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="marketfeed",
        description="A real-time market-data feed on Kafka with caching consumers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(_run=command.run)
    bench = sub.add_parser("bench", help="benchmarks that print figures beside a baseline")
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT", parser_class=OneLineParser)
    for command in BENCHES:
        p = bench_sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    prog = " ".join(["marketfeed", args.command, *([args.bench] if "bench" in args else [])])
    for name in ("_run", "command", "bench"):
        if name in args:
            delattr(args, name)
    return run_async(prog, lambda: run(args))
