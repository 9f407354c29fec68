"""``marketfeed order-entry`` / ``python -m order_entry``: run order_entry on any broker + Redis."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.cli import OneLineParser, run_async
from common.config import add_arguments, build
from common.errors import ConfigError
from common.logs import setup_logging
from common.service import serve
from common.symbols import load_symbols
from order_entry.config import OrderEntryConfig

DESCRIPTION = (
    "Run order_entry: a quote cache of its tradable symbols in its own Redis. Every option can "
    "also be set by the MARKETFEED_* environment variable named in its help."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, OrderEntryConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(OrderEntryConfig, args)
    tradable = load_symbols(config.tradable, config.tradable_file, flag="--tradable")
    if not tradable:
        raise ConfigError("--tradable: no tradable symbols given (--tradable or --tradable-file)")
    setup_logging(config.log_level)
    # faust (a second of imports) only once the flags are good: a bad flag exits at once.
    from order_entry.service import OrderEntryService  # noqa: PLC0415

    service = OrderEntryService(config, tradable=tradable)
    return await serve(service, service.wait)


def main(argv: Sequence[str] | None = None, prog: str = "order_entry") -> int:
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
