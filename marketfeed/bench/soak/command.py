"""``marketfeed bench soak``: the whole stack for a long time, and whether it stayed flat.

It runs what ``marketfeed up`` runs (the publisher, order_entry, portfolio and the simulated
order flow, each its own process, on the embedded broker and Redis unless ``--bootstrap`` /
``--redis-url``) for ``--warmup`` then ``--duration`` seconds, and every ``--sample-every``
seconds takes: publish -> readable latency per window (a latency probe, HdrHistogram,
coordinated-omission aware), each service's lag (``marketfeed lag``'s rules), memory and CPU
of every process, generations of the quote topic rolled and deleted, and the order flow's
outcomes. It reports whether each figure stayed flat (its last ``--segment`` against its first)
and the targets of issue 10; ``--out`` gets results.json, report.md and PNG plots over time,
and a checkpoint every ``--checkpoint-every`` seconds. Ctrl-C ends the soak early: everything
is stopped, and what was measured is reported. See marketfeed.bench.soak.runner.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.config import add_arguments
from marketfeed.bench.core import command
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.soak.settings import SoakConfig

PROG = "marketfeed bench soak"
DESCRIPTION = (
    "The whole stack (publisher, order_entry, portfolio, order flow) for a long time, sampled "
    "every few seconds: e2e latency, lag, memory, CPU, generations, STALE_QUOTE rejections; "
    "whether each stayed flat."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, SoakConfig)


async def run(args: argparse.Namespace) -> int:
    config = command.settings_of(SoakConfig, args)
    # Only now: they bring aiokafka, numpy, redis and the services' configs.
    from marketfeed.bench.soak import report, runner  # noqa: PLC0415

    progress = StepProgress(config.total_s, desc="bench soak", unit="s")
    return await command.measure_and_report(
        config,
        progress,
        runner.measure,
        lambda run: report.render_markdown(run.results, run.histograms),
        report.write_outputs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return command.main(PROG, DESCRIPTION, configure, run, argv)
