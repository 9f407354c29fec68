"""``marketfeed bench access``: the trade-off of a cache, measured side by side in one run.

On the same quotes, a quote read three ways: from the service's own cache (the library call,
``QuoteReader``), by request/response over Kafka (the publisher's snapshot responder,
``SnapshotClient.request``), and over HTTP from the API; p50/p99/p99.9 and reads/s for each,
and what keeping the cache fresh costs (CPU and memory of the caching consumer at the run's
feed rate). Then orders placed synchronously over HTTP beside the same path in-process, and
how many SSE clients the API serves at ``--client-rate`` updates/s (its CPU per step).

Everything it starts (embedded broker and Redis unless given, every child) is stopped at the
end, also on Ctrl-C. See marketfeed.bench.access.runner for the order of things.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.config import add_arguments
from marketfeed.bench.access.settings import AccessBenchConfig
from marketfeed.bench.core import command
from marketfeed.bench.core.progress import StepProgress

PROG = "marketfeed bench access"
DESCRIPTION = (
    "A quote read from the cache (library), by request/response over Kafka and over HTTP, "
    "side by side, with the cache's own cost; orders over HTTP; SSE fan-out of the API."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, AccessBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = command.settings_of(AccessBenchConfig, args)
    # Only now: they bring aiokafka, httpx, the API's modules and the child processes.
    from marketfeed.bench.access import report, runner  # noqa: PLC0415

    progress = StepProgress(2 + len(config.clients), desc="bench access")
    return await command.measure_and_report(
        config, progress, runner.measure, report.render_markdown, report.write_outputs
    )


def main(argv: Sequence[str] | None = None) -> int:
    return command.main(PROG, DESCRIPTION, configure, run, argv)
