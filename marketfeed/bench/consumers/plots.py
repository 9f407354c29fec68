"""PNG plots of a consumer-benchmark run: lag over time per rate, latency percentiles per rate.

Every figure has a title, every axis its unit, every panel a legend. Lag is drawn on linear
axes from zero: a consumer that is caught up reads 0, which a log axis cannot show (it drew
every caught-up sample as a spike down). The unthrottled step ("max") has no rate of its own:
it is set apart from the numeric rates and labelled with the rate the publisher achieved.

matplotlib is an optional extra, imported when plots are written (marketfeed.bench.core.plotting).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from marketfeed.bench.consumers.results import Results, Step, Timeline
from marketfeed.bench.consumers.summary import (
    TARGET_LATENCY_RATE,
    TARGET_P50_MS,
    TARGET_P99_MS,
)
from marketfeed.bench.core.plotting import nan, pyplot, save, thousands

COLOURS = {
    "caching": "tab:blue",
    "caching-unsigned": "tab:cyan",
    "naive": "tab:red",
    "bare": "tab:green",
}
# Key, line style, marker (the same for the "max" point, which no line reaches), label.
PERCENTILES = (
    ("p50_ms", "-", "o", "p50"),
    ("p99_ms", "--", "s", "p99"),
    ("p99.9_ms", ":", "^", "p99.9"),
)
# How far "max" sits from the last numeric rate, in steps.
_MAX_GAP = 0.4


def spans(timeline: Timeline, phase: str) -> list[tuple[float, float]]:
    """(start, end) of each run of samples in ``phase``; it ends at the next sample."""
    found: list[tuple[float, float]] = []
    start: float | None = None
    for t, name in zip(timeline.t, timeline.phase, strict=True):
        if name == phase and start is None:
            start = t
        elif name != phase and start is not None:
            found.append((start, t))
            start = None
    if start is not None:
        found.append((start, timeline.t[-1]))
    return found


def rate_positions(steps: list[Step]) -> tuple[list[float], list[str]]:
    """Where each step sits on a rate axis, and its tick label.

    Numeric rates one apart, in their order; "max" after them, set apart by ``_MAX_GAP``
    more, and labelled with the rate the publisher achieved, since it has no rate of its own.
    """
    numeric = sum(1 for step in steps if step.target_rate is not None)
    positions: list[float] = []
    labels: list[str] = []
    seen = unthrottled = 0
    for step in steps:
        if step.target_rate is None:
            positions.append(numeric + (_MAX_GAP if numeric else 0.0) + unthrottled)
            labels.append(f"max\n({step.publisher.achieved_rate:,.0f}\nachieved)")
            unthrottled += 1
        else:
            positions.append(float(seen))
            labels.append(step.label)
            seen += 1
    return positions, labels


def write_plots(results: Results, out: Path) -> list[Path]:
    plt = pyplot()
    return [
        _lag_plot(plt, results, out / "lag.png"),
        _latency_plot(plt, results, out / "latency.png"),
    ]


def _shade_phases(ax: Any, timeline: Timeline) -> None:
    for phase, colour, label in (
        ("measure", "tab:cyan", "measurement window"),
        ("pause", "grey", "consumers paused"),
    ):
        for i, (start, end) in enumerate(spans(timeline, phase)):
            ax.axvspan(start, end, color=colour, alpha=0.12, label=label if i == 0 else None)


def _lag_plot(plt: Any, results: Results, path: Path) -> Path:
    steps = results.steps
    bound_s = float(results.config.get("lag_bound", 1.0))
    fig, axes = plt.subplots(len(steps), 2, figsize=(13, 3.2 * len(steps) + 0.8), squeeze=False)
    fig.suptitle(
        "marketfeed bench consumers: lag during each rate step (linear axes from 0)", fontsize=12
    )
    for row, step in zip(axes, steps, strict=True):
        tl = step.timeline
        achieved = f"{step.publisher.achieved_rate:,.0f} msg/s achieved"
        panels = (
            (row[0], tl.offset_lag, 1.0, "offset lag", "records waiting"),
            (row[1], tl.time_lag_ms, 1e-3, "time lag", "seconds behind"),
        )
        for ax, series, scale, what, unit in panels:
            _shade_phases(ax, tl)
            for name, values in series.items():
                ax.plot(
                    tl.t,
                    [v * scale for v in nan(values)],
                    label=name,
                    color=COLOURS.get(name),
                    linewidth=1,
                )
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(thousands(plt))
            ax.set_title(f"{step.label} msg/s ({achieved}): {what}", fontsize=9)
            ax.set_ylabel(unit, fontsize=8)
            ax.set_xlabel("seconds since the step's processes started", fontsize=8)
            ax.grid(True, alpha=0.3)
        row[1].axhline(
            bound_s, color="black", linestyle="--", linewidth=0.8, label=f"lag bound {bound_s:g} s"
        )
        for ax in row:
            ax.legend(fontsize=7, loc="upper left")
    return save(plt, fig, path)


def _latency_plot(plt: Any, results: Results, path: Path) -> Path:
    steps = results.steps
    names = list(results.config["consumers"])
    positions, labels = rate_positions(steps)
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.6 * len(names) + 0.6, 5), squeeze=False, sharey=True
    )
    fig.suptitle("marketfeed bench consumers: latency percentiles per publisher rate", fontsize=12)
    numeric = [i for i, s in enumerate(steps) if s.target_rate is not None]
    for ax, name in zip(axes[0], names, strict=True):
        for key, style, marker, label in PERCENTILES:
            values = []
            for step in steps:
                c = step.consumers.get(name)
                values.append(c.latency_ms.get(key, math.nan) if c and c.measured else math.nan)
            colour = COLOURS.get(name)
            # The numeric rates as a line; "max" as a point of its own, set apart.
            ax.plot(
                [positions[i] for i in numeric],
                [values[i] for i in numeric],
                style,
                marker=marker,
                color=colour,
                label=label,
            )
            rest = [i for i in range(len(steps)) if i not in numeric]
            ax.plot([positions[i] for i in rest], [values[i] for i in rest], marker, color=colour)
        if name == "caching":
            at = f"at {TARGET_LATENCY_RATE:,.0f} msg/s"
            for value, style, label in (
                (TARGET_P50_MS, "-", f"target p50 ≤ {TARGET_P50_MS:g} ms {at}"),
                (TARGET_P99_MS, "--", f"target p99 ≤ {TARGET_P99_MS:g} ms {at}"),
            ):
                ax.axhline(value, color="black", linestyle=style, linewidth=0.8, label=label)
        if numeric and len(numeric) < len(steps):
            # Between the last numeric rate and "max": they are not on one scale.
            ax.axvline(len(numeric) - 0.5 + _MAX_GAP / 2, color="grey", linewidth=0.6)
        ax.set_yscale("log")  # latencies are > 0: a log axis has no zero to hide
        ax.tick_params(labelleft=True)  # shared, but every panel shows its scale
        ax.set_xticks(positions, labels, fontsize=8)
        ax.set_xlabel("publisher rate, msg/s (quotes + trades)", fontsize=8)
        what = "publish → fetched" if name == "bare" else "publish → readable in Redis"
        ax.set_ylabel(f"{what}, ms (log scale)", fontsize=8)
        ax.set_title(name + (" (Kafka timestamps, 1 ms resolution)" if name == "bare" else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return save(plt, fig, path)
