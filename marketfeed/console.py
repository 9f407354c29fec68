"""What ``marketfeed up`` shows its user: the status line on stdout, events on stderr.

The status line goes to stdout, rewritten in place on a terminal, one line per interval
otherwise (a pipe, a file). Events (a part stopped, a server died or stopped answering) go to
stderr, and into up's own log file: in ``marketfeed up | tee out`` a Ctrl-C kills ``tee`` too,
so the lines of the stop that follows must not depend on stdout. A stdout whose reader has gone
(EPIPE) is replaced by /dev/null, once, rather than ending ``up`` half-way through its stop
with a BrokenPipeError (and again at interpreter exit, when Python flushes it).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PROG = "marketfeed up"


class Console:
    def __init__(
        self,
        *,
        log: logging.Logger,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        """``log``: where every event is recorded too (up's log file)."""
        self._log = log
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._tty = self._out.isatty()
        self._open = False  # a status line is on screen without its newline

    def show(self, text: str) -> None:
        """Print lines on stdout (the banner)."""
        self._end_status()
        self._write(self._out, text + "\n")

    def status(self, line: str) -> None:
        """Show the status line: in place on a terminal, one line per call otherwise."""
        if self._tty:
            self._write(self._out, "\r\x1b[K" + line)
            self._open = True
        else:
            self._write(self._out, line + "\n")

    def event(self, message: str, *, level: int = logging.INFO) -> None:
        """One line on stderr, ``marketfeed up: message``, and the same in the log."""
        self._log.log(level, "%s", message)
        self._end_status()
        try:
            self._err.write(f"{PROG}: {message}\n")
            self._err.flush()
        except OSError:
            pass  # nobody to tell: the line is in the log

    def detail(self, line: str) -> None:
        """An indented line under the previous event (a log's tail), stderr only."""
        try:
            self._err.write(f"    {line}\n")
            self._err.flush()
        except OSError:
            pass

    def _end_status(self) -> None:
        if self._open:
            self._open = False
            self._write(self._out, "\n")

    def _write(self, stream: TextIO, text: str) -> None:
        if stream is _DEVNULL:
            return
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            self._drop_stdout()

    def _drop_stdout(self) -> None:
        # The reader is gone for good. Point fd 1 at /dev/null, so that Python's own flush at
        # exit does not fail on what is still buffered.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._out.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
        self._out = _DEVNULL
        self._tty = False


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


_DEVNULL: TextIO = _Null()  # type: ignore[assignment]
