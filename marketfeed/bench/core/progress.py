"""A progress bar for the benchmark's steps on stderr: tqdm when installed, else plain lines.

stdout carries only the report, so that ``marketfeed bench consumers > report.md`` works.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, TextIO


class StepProgress:
    def __init__(
        self, total: int, *, desc: str = "bench consumers", stream: TextIO = sys.stderr
    ) -> None:
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
