"""``marketfeed publish`` / ``python -m feed_publisher``: run only the publisher."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common.cli import EXIT_OK, OneLineParser, install_stop_signals, run_async
from common.config import add_arguments, build
from common.lifecycle import cancel_and_wait
from common.logs import setup_logging
from feed_publisher.config import PublisherConfig

if TYPE_CHECKING:
    from feed_publisher.publisher import Publisher

log = logging.getLogger("feed_publisher")

DESCRIPTION = (
    "Run the simulated market and publish quotes and trades to Kafka (msgpack, key = symbol). "
    "Every option can also be set by the MARKETFEED_* environment variable named in its help."
)
STATS_EVERY_S = 5.0


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, PublisherConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(PublisherConfig, args)
    setup_logging(config.log_level)
    # numpy and the market only once the flags are good: a bad flag exits at once.
    from feed_publisher.publisher import Publisher  # noqa: PLC0415

    stop = asyncio.Event()
    install_stop_signals(stop)
    async with Publisher(config) as publisher:
        reporter = asyncio.create_task(_report(publisher, stop))
        try:
            await publisher.run(stop)
        finally:
            await cancel_and_wait(reporter)
    return EXIT_OK


async def _report(publisher: Publisher, stop: asyncio.Event) -> None:
    last_acked, last_t = 0, 0.0
    while not stop.is_set():
        await asyncio.sleep(STATS_EVERY_S)
        s = publisher.stats()
        rate = (s.acked - last_acked) / max(s.elapsed_s - last_t, 1e-9)
        last_acked, last_t = s.acked, s.elapsed_s
        # One line a reader (and the soak benchmark) can parse: key=value pairs after "stats".
        log.info(
            "stats acked=%d rate=%.0f held=%d dropped=%d lost=%d lateness_p99_ms=%.1f"
            " generation=%d rolls=%d deleted=%d delete_failures=%d"
            " snapshots_served=%d snapshots_rejected=%d",
            s.acked,
            rate,
            s.held,
            s.dropped,
            s.failed,
            s.lateness_p99_ms,
            s.generation,
            s.rolls,
            s.deleted,
            s.delete_failures,
            s.snapshots_served,
            s.snapshots_rejected,
        )


def main(argv: Sequence[str] | None = None, prog: str = "feed_publisher") -> int:
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
