"""Command-line plumbing shared by every entry point: one-line errors, exit codes, signals.

Exit codes: 0 done, 1 a runtime failure (broker unreachable, a child died), 2 bad input (flag,
environment value), 130 interrupted. Our own errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from common.errors import ConfigError, MarketfeedError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def run_async(prog: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main`` in a fresh event loop and map our errors to one line and an exit code."""
    if not logging.getLogger().handlers:
        # A one-shot command that sets up no logging (``quote``, ``order``): aiokafka's report
        # of each failed connect and the retry loop's "unavailable; retrying" would reach
        # stderr through logging's last resort, around the one line that our error makes of
        # the final failure. A service logs them (it has handlers).
        for name in ("aiokafka", "common.kafka"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return asyncio.run(main())
    except ConfigError as exc:
        return fail(prog, str(exc), EXIT_USAGE)
    except MarketfeedError as exc:
        return fail(prog, str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def exit_now(code: int) -> NoReturn:
    """End a service process that has stopped: flush the logs and stdio, then exit at once.

    For ``python -m SERVICE`` once ``main()`` returned, when everything is stopped and closed.
    The interpreter's own teardown of every module (faust, aiokafka, numpy...) is skipped: it
    was most of a service's stop (0.5-0.7 s after main() returned on an idle machine, 1-2 s
    under load, measured), and a stop of ``marketfeed up`` waits on each stage in turn.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def install_stop_signals(
    stop: asyncio.Event,
    *,
    force: asyncio.Event | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> None:
    """``signals`` set ``stop``; whoever waits on it shuts down in order.

    With ``force``, a second one (Ctrl-C again) sets ``force`` too: stop waiting for anyone.
    """
    loop = asyncio.get_running_loop()

    def handle() -> None:
        if stop.is_set() and force is not None:
            force.set()
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, handle)
