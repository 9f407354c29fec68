"""What each benchmark command does before it measures, and its ``python -m`` entry.

A benchmark's ``command`` module has ``configure(parser)`` and ``async run(args)``, like every
``marketfeed`` subcommand. Its settings are settled here, all before anything starts: flags
and ``MARKETFEED_*`` variables, the smoke preset, the log level, a writable ``--out``. Then
every benchmark reports alike: a progress bar on stderr, the Markdown report alone on stdout
(``> report.md`` works), its files in ``--out``.

Light on purpose: nothing here imports what a benchmark needs to run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from common.cli import EXIT_OK, OneLineParser, run_async
from common.config import build
from common.logs import setup_logging
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.settings import BenchSettings, prepare_out

S = TypeVar("S", bound=BenchSettings)
R = TypeVar("R")


def settings_of(cls: type[S], args: argparse.Namespace) -> S:
    """The run's settings: built, smoke preset applied and checked; logging set up."""
    config = build(cls, args).effective()
    setup_logging(config.log_level)
    if config.out is not None:
        prepare_out(config.out)
    return config


async def measure_and_report(
    config: S,
    progress: StepProgress,
    measure: Callable[[S, StepProgress], Awaitable[R]],
    render: Callable[[R], str],
    write: Callable[[R, Path], list[str]],
) -> int:
    """Measure with a progress bar on stderr, print the report on stdout, write ``--out``."""
    with progress:
        results = await measure(config, progress)
    print(render(results), end="", flush=True)
    if config.out is not None:
        for note in write(results, config.out):
            print(note, file=sys.stderr)
    return EXIT_OK


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
