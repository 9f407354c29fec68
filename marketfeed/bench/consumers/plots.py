"""PNG plots of a consumer-benchmark run: lag over time per rate, latency percentiles per rate.

matplotlib is an optional extra (``pip install 'marketfeed[bench]'``); it is imported only
here, by name, when plots are written: without it :func:`write_plots` raises ImportError and
the benchmark says it skipped them.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from marketfeed.bench.consumers.results import Results, Timeline

COLOURS = {"caching": "tab:blue", "naive": "tab:red", "bare": "tab:green"}


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only: no display here, and none wanted
    return importlib.import_module("matplotlib.pyplot")


def _nan(values: list[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _pauses(timeline: Timeline) -> list[tuple[float, float]]:
    """(start, end) of each pause, from the phases of the samples."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for t, phase in zip(timeline.t, timeline.phase, strict=True):
        if phase == "pause" and start is None:
            start = t
        elif phase != "pause" and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, timeline.t[-1]))
    return spans


def write_plots(results: Results, out: Path) -> list[Path]:
    plt = _pyplot()
    return [
        _lag_plot(plt, results, out / "lag.png"),
        _latency_plot(plt, results, out / "latency.png"),
    ]


def _lag_plot(plt: Any, results: Results, path: Path) -> Path:
    steps = results.steps
    fig, axes = plt.subplots(len(steps), 2, figsize=(13, 2.8 * len(steps) + 0.6), squeeze=False)
    for row, step in zip(axes, steps, strict=True):
        tl = step.timeline
        for ax, series, unit in (
            (row[0], tl.offset_lag, "offset lag, records"),
            (row[1], tl.time_lag_ms, "time lag, ms"),
        ):
            for name, values in series.items():
                ax.plot(tl.t, _nan(values), label=name, color=COLOURS.get(name), linewidth=1)
            for start, end in _pauses(tl):
                ax.axvspan(start, end, color="grey", alpha=0.12)
            ax.set_yscale("symlog", linthresh=10)
            ax.set_title(f"{step.label} msg/s: {unit}", fontsize=9)
            ax.grid(True, alpha=0.3)
        row[0].set_xlabel(
            "s since the step's processes started (shaded: consumers paused)", fontsize=8
        )
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _latency_plot(plt: Any, results: Results, path: Path) -> Path:
    labels = [s.label for s in results.steps]
    fig, ax = plt.subplots(figsize=(9, 5))
    for name in results.config["consumers"]:
        for key, style in (("p50_ms", "-"), ("p99_ms", "--"), ("p99.9_ms", ":")):
            values = []
            for step in results.steps:
                c = step.consumers.get(name)
                values.append(c.latency_ms.get(key, math.nan) if c and c.measured else math.nan)
            ax.plot(
                labels,
                values,
                style,
                marker="o",
                color=COLOURS.get(name),
                label=f"{name} {key.removesuffix('_ms')}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("publisher rate, msg/s")
    ax.set_ylabel("publish -> readable, ms")
    ax.set_title("latency percentiles per rate (bare: publish -> fetched)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
