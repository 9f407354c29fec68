"""``marketfeed order-flow`` / ``python -m order_flow``: run only the simulated order flow."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.cli import OneLineParser, run_async
from common.config import add_arguments, build
from common.errors import ConfigError
from common.logs import setup_logging
from common.service import serve
from common.symbols import load_symbols
from order_flow.config import OrderFlowConfig

DESCRIPTION = (
    "Send a paced stream of random orders from simulated accounts to orders.commands: mostly "
    "market orders, some limit orders (marketable, and passive ones that are cancelled) and a "
    "few bad ones that order_entry rejects. Every option can also be set by the MARKETFEED_* "
    "environment variable named in its help."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, OrderFlowConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(OrderFlowConfig, args)
    tradable = load_symbols(config.tradable, config.tradable_file, flag="--tradable")
    if not tradable:
        raise ConfigError("--tradable: no symbols to trade given (--tradable or --tradable-file)")
    setup_logging(config.log_level)
    # Its clients only once the flags are good: a bad flag exits at once.
    from order_flow.flow import OrderFlow  # noqa: PLC0415

    flow = OrderFlow(config, tradable=sorted(tradable))
    # serve(): SIGINT/SIGTERM stop it cleanly even during a slow start (a broker still coming
    # up); the sending task is cancelled, then stop() flushes what was sent.
    return await serve(flow, flow.run)


def main(argv: Sequence[str] | None = None, prog: str = "order_flow") -> int:
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
