"""``python -m marketfeed.bench.access.cache``: the caching consumer alone, as a process.

What ``bench access`` reads from, and whose CPU and memory are the cost of keeping a cache
fresh: the project's CachingConsumer of the first ``--interest`` symbols, nothing else (no
faust app, no orders), until SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from common.cache import CachingConsumer
from common.cache.settings import CacheSettings
from common.cli import OneLineParser, run_async
from common.config import add_arguments, build, known_log_level, positive, setting
from common.logs import setup_logging
from common.service import serve
from feed_publisher.universe import universe

SERVICE = "access_cache"


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheChildConfig(CacheSettings):
    interest: int = setting(100, help="follow the first N symbols", check=positive)
    log_level: str = setting("WARNING", help="log level", check=known_log_level)


async def run(args: argparse.Namespace) -> int:
    config = build(CacheChildConfig, args)
    setup_logging(config.log_level)
    cache = CachingConsumer(config, service=SERVICE, interest=universe(config.interest))
    return await serve(cache, cache.wait)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="bench-access-cache", description=__doc__)
    add_arguments(parser, CacheChildConfig)
    args = parser.parse_args(argv)
    return run_async("bench-access-cache", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
