"""What each benchmark command does before it measures, and its ``python -m`` entry.

A benchmark's ``command`` module has ``configure(parser)`` and ``async run(args)``, like every
``marketfeed`` subcommand. Its settings are settled here, all before anything starts: flags
and ``MARKETFEED_*`` variables, the smoke preset, the log level, a writable ``--out``.

Light on purpose: nothing here imports what a benchmark needs to run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from common.cli import OneLineParser, run_async
from common.config import build
from common.logs import setup_logging
from marketfeed.bench.core.settings import BenchSettings, prepare_out

S = TypeVar("S", bound=BenchSettings)


def settings_of(cls: type[S], args: argparse.Namespace) -> S:
    """The run's settings: built, smoke preset applied and checked; logging set up."""
    config = build(cls, args).effective()
    setup_logging(config.log_level)
    if config.out is not None:
        prepare_out(config.out)
    return config


def main(
    prog: str,
    description: str,
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m`` of a benchmark: the same flags and run as ``marketfeed bench ...``."""
    parser = OneLineParser(prog=prog, description=description)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
