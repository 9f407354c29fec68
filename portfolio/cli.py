"""``marketfeed portfolio`` / ``python -m portfolio``: run portfolio on any broker + Redis."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.cli import OneLineParser, run_async
from common.config import add_arguments, build
from common.logs import setup_logging
from common.service import serve
from common.symbols import load_symbols
from portfolio.config import PortfolioConfig

DESCRIPTION = (
    "Run portfolio: positions marked to market from a quote cache, in its own Redis, of the "
    "symbols it holds and its watchlist. Every option can "
    "also be set by the MARKETFEED_* environment variable named in its help."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, PortfolioConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(PortfolioConfig, args)
    watchlist = load_symbols(config.watchlist, config.watchlist_file, flag="--watchlist")
    setup_logging(config.log_level)
    # faust (a second of imports) only once the flags are good: a bad flag exits at once.
    from portfolio.service import PortfolioService  # noqa: PLC0415

    service = PortfolioService(config, watchlist=watchlist)
    return await serve(service, service.wait)


def main(argv: Sequence[str] | None = None, prog: str = "portfolio") -> int:
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
