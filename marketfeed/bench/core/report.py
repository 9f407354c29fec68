"""How every benchmark writes its figures: Markdown tables, numbers, and results.json.

The report goes to stdout (readable in a terminal, pasteable as Markdown); results.json is the
run's results dataclass as it is, so that a later tool can read every figure.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

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
