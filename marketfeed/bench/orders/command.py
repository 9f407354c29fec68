"""``marketfeed bench orders``: order throughput and latency, and how fast order_entry joins.

With quotes flowing (the publisher at ``--quote-rate``, 10k msg/s by default, in a process of
its own), in one run:

- join and warm: the time from spawning order_entry to its first order answered FILLED; then
  a second order_entry joining the same consumer group, until the group has rebalanced and it
  serves its share (marketfeed.bench.orders.join), and the first taking everything back when
  the second stops;
- rate steps (``--order-rates 100,500,1000,max``): an open-loop order driver
  (marketfeed.bench.orders.driver) sends order *i* at ``start + i / rate`` and times it from
  that intended time to its terminal event on ``orders.events`` (HdrHistogram); "max" is a
  closed loop with ``--window`` orders outstanding. Per step: achieved orders/s (terminal
  events/s), p50/p90/p99/p99.9/max, orders with no answer, the publisher's quote rate;
- the baseline, measured in the same run at the same rates: the same driver against a bare
  echo consumer (marketfeed.bench.orders.echo) on topics of its own; every step is also given
  as a ratio against it, because these machines are shared and noisy.

Everything it starts (embedded broker and Redis unless ``--bootstrap`` / ``--redis-url``, and
every child process) is stopped at the end, also on Ctrl-C. See marketfeed.bench.orders.runner
for the order of things.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.config import add_arguments
from marketfeed.bench.core import command
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.orders.settings import OrdersBenchConfig

PROG = "marketfeed bench orders"
DESCRIPTION = (
    "Orders per second through order_entry (validate -> event) and latency from command to "
    "event, with quotes flowing, beside a bare echo consumer; and the time a new order_entry "
    "process takes to join its group and warm its cache."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, OrdersBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = command.settings_of(OrdersBenchConfig, args)
    # Only now: they bring aiokafka, faust, numpy and the child processes' machinery.
    from marketfeed.bench.orders import report, runner  # noqa: PLC0415

    # The join phase, then each rate step.
    progress = StepProgress(1 + len(config.rates), desc="bench orders")
    return await command.measure_and_report(
        config, progress, runner.measure, report.render_markdown, report.write_outputs
    )


def main(argv: Sequence[str] | None = None) -> int:
    return command.main(PROG, DESCRIPTION, configure, run, argv)
