"""A progress bar for a benchmark on stderr, in steps or seconds: tqdm when installed, else
plain lines.

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
    """``with StepProgress(steps, desc=...) as progress``: the bar is closed however it ends.

    ``unit="s"`` with a total in seconds shows elapsed and remaining time (a soak).
    """

    def __init__(
        self, total: float, *, desc: str, unit: str = "step", stream: TextIO = sys.stderr
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done: float = 0
        self._stream = stream
        self._bar: Any = None
        try:
            # Imported by name: tqdm is an optional extra ("bench"), and mypy need not know it.
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            # In seconds, a rate ("1.00s/s") says nothing: elapsed and remaining do.
            timed = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
            self._bar = tqdm(
                total=total,
                unit=unit,
                desc=desc,
                file=stream,
                bar_format=timed if unit == "s" else None,
            )

    def phase(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        else:
            done = f"{self.done:g}/{self.total:g}{'' if self.unit == 'step' else ' ' + self.unit}"
            print(f"{self.desc} [{done}] {text}", file=self._stream, flush=True)

    def advance(self, amount: float = 1) -> None:
        amount = min(amount, max(0.0, self.total - self.done))  # never past the end
        self.done += amount
        if self._bar is not None:
            self._bar.update(amount)

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
