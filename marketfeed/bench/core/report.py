"""How every benchmark writes its figures: Markdown tables, numbers, results.json and plots.

The report goes to stdout (readable in a terminal, pasteable as Markdown); results.json is the
run's results dataclass as it is, so that a later tool can read every figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

# A figure that was not measured.
DASH = "—"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (readable in a terminal too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])


def shown(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` (e.g. ",.0f"), or a dash if it was not measured."""
    return DASH if value is None else format(value, spec)


def ms(value: float | None, digits: int) -> str:
    """A latency in ms: ``digits`` decimals below 100 ms, whole milliseconds above."""
    if value is None:
        return DASH
    return f"{value:.{digits}f}" if value < 100 else f"{value:,.0f}"


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a figure becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(results: Any, out: Path) -> None:
    """``out``/results.json: every figure of ``results`` (a dataclass)."""
    (out / "results.json").write_text(json.dumps(finite(asdict(results)), indent=1) + "\n")


def write_files(
    results: R,
    out: Path,
    markdown: str,
    plots: Callable[[R, Path], list[Path]] | None = None,
) -> list[str]:
    """``out``/results.json, report.md and the plots; the lines to tell the user.

    Without matplotlib (the ``bench`` extra) the plots are skipped, and a line says so.
    """
    write_json(results, out)
    (out / "report.md").write_text(markdown)
    written = ["results.json", "report.md"]
    notes = []
    if plots is not None:
        try:
            written += [p.name for p in plots(results, out)]
        except ImportError:
            notes.append(
                "plots skipped: matplotlib is not installed (pip install 'marketfeed[bench]')"
            )
    return [f"wrote {', '.join(written)} to {out}", *notes]
