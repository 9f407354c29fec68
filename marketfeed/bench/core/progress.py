"""A progress bar for a benchmark's steps on stderr: tqdm when installed, else plain lines.

stdout carries only the report, so that ``marketfeed bench consumers > report.md`` works.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TextIO

# What a part of a benchmark is given to say what it is doing now (StepProgress.phase).
Progress = Callable[[str], None]


class StepProgress:
    """``with StepProgress(steps, desc=...) as progress``: the bar is closed however it ends."""

    def __init__(self, total: int, *, desc: str, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.desc = desc
        self.done = 0
        self._stream = stream
        self._bar: Any = None
        try:
            # Imported by name: tqdm is an optional extra ("bench"), and mypy need not know it.
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=total, unit="step", desc=desc, file=stream)

    def phase(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        else:
            print(f"{self.desc} [{self.done}/{self.total}] {text}", file=self._stream, flush=True)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
