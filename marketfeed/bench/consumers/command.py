"""``marketfeed bench consumers``: consumer lag, latency and throughput, side by side.

On one feed in one run, consumers of the quote topic, each in its own process:

- caching: the project's CachingConsumer, following the first ``interest`` x symbols;
- naive: every partition, decode every record, one awaited Redis SET per record (the baseline);
- bare: an aiokafka consume loop with no decoding and no Redis (the ceiling);
- caching-unsigned, only when named in ``--consumers``: the caching consumer with no key, on the
  same signed feed; beside caching, what verifying signatures costs (``signing``).

The publisher runs in a process of its own. For each rate and consumer: the publisher's
achieved rate and lateness; publish -> readable latency; offset and time lag over the step
and whether it stayed bounded; the share of the feed fetched and decoded, and conflation;
then a pause of the consumers (together) and each one's catch-up time and rate. Then the
highest rate each sustained, ratios between them, and ``get quote`` latency beside a raw GET.

Each rate step runs on topics of its own, with a publisher and consumers started for it (the
same seed, so the same ticks). Why: the embedded broker (Tansu 0.6.0, memory engine) spends
time on every fetch in proportion to the record batches a partition holds, and the publisher
sends small batches at moderate rates, so a topic gets slower to read the longer it is written
(measured here: one bare consumer at 10k msg/s falls behind within about ten seconds on one
topic, while a fresh topic beside it starts fast). On one topic for the whole run, each step
would measure how much the steps before it had published. See marketfeed.bench.consumers.step
for a step's phases, and runner._retire for which consumers are not run at higher rates.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.config import add_arguments
from marketfeed.bench.consumers.settings import ConsumersBenchConfig
from marketfeed.bench.core import command
from marketfeed.bench.core.progress import StepProgress

PROG = "marketfeed bench consumers"
DESCRIPTION = (
    "Consumer lag, publish->readable latency and throughput of the caching consumer beside a "
    "naive consumer and a bare consume loop, on one feed stepped through rates."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, ConsumersBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = command.settings_of(ConsumersBenchConfig, args)
    # Only now: they bring numpy, aiokafka, redis and the worker machinery.
    from marketfeed.bench.consumers import report, runner  # noqa: PLC0415

    progress = StepProgress(len(config.rates), desc="bench consumers")
    return await command.measure_and_report(
        config, progress, runner.measure, report.render_markdown, report.write_outputs
    )


def main(argv: Sequence[str] | None = None) -> int:
    return command.main(PROG, DESCRIPTION, configure, run, argv)
