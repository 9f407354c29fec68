"""What every benchmark's plots share: matplotlib, imported only when plots are written.

matplotlib is an optional extra (``pip install 'marketfeed[bench]'``), imported by name here:
without it :func:`pyplot` raises ImportError, and the benchmark says it skipped its plots
(``marketfeed.bench.core.report.write_files``).
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only: no display here, and none wanted
    return importlib.import_module("matplotlib.pyplot")


def nan(values: list[Any]) -> list[float]:
    """A series with None (not measured) as NaN: a gap in the line, not a zero."""
    return [math.nan if v is None else float(v) for v in values]


def save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def thousands(plt: Any) -> Any:
    """A tick formatter that writes 1,200,000 rather than 1.2 with "1e6" above the axis."""
    ticker = importlib.import_module("matplotlib.ticker")
    return ticker.FuncFormatter(
        lambda value, _: f"{value:,.0f}" if value == int(value) else f"{value:,g}"
    )
