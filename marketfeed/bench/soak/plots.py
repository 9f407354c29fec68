"""PNG plots of a soak over time: e2e latency per window, lag per service, memory and CPU.

Every figure has a title, every axis its unit, every panel a legend; the warm-up and the two
segments the verdicts compare are shaded, the targets are lines. Lag, memory and CPU are drawn
on linear axes from zero (a caught-up cache reads 0). Latency is drawn on a log axis, which
has no zero to hide: a window in which no quote became readable has no latency at all, and is
marked along the bottom instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketfeed.bench.core.plotting import nan, pyplot, save, thousands
from marketfeed.bench.soak.flat import segments
from marketfeed.bench.soak.results import SOAK, Sample, SoakResults
from marketfeed.bench.soak.settings import (
    TARGET_BROKER_RSS_MB,
    TARGET_P50_MS,
    TARGET_P99_MS,
    TARGET_TIME_LAG_S,
)

SECONDS = "seconds since the stack was up"


def write_plots(results: SoakResults, out: Path) -> list[Path]:
    plt = pyplot()
    title = (
        f"marketfeed bench soak: {results.config['rate']:,.0f} msg/s, "
        f"{results.config['symbols']:,} symbols, {results.config['partitions']} partitions"
    )
    return [
        _latency(plt, results.samples, float(results.config["segment"]), title, out),
        _lag(plt, results.samples, float(results.config["segment"]), title, out),
        _memory(plt, results.samples, float(results.config["segment"]), title, out),
    ]


def _shade(ax: Any, samples: list[Sample], share: float) -> None:
    """The warm-up, and the first and last segments of the measured run."""
    warm = [s for s in samples if s.phase != SOAK]
    if warm:
        ax.axvspan(0, warm[-1].t, color="grey", alpha=0.15, label="warm-up (not judged)")
    seg = segments(samples, share)
    if seg is None:
        return
    for idx, colour, label in ((seg.first, "tab:green", "first"), (seg.last, "tab:orange", "last")):
        start = samples[idx[0]].start
        ax.axvspan(
            start, samples[idx[-1]].t, color=colour, alpha=0.12, label=f"{label} {share:.0%}"
        )


def _finish(ax: Any, ylabel: str, *, zero: bool = True, target: float | None = None) -> None:
    """Axis labels, a legend beside the panel, and the target (if any) within sight."""
    if zero:
        ax.set_ylim(bottom=0)
    if target is not None and ax.get_ylim()[1] < target * 1.15:
        ax.set_ylim(top=target * 1.15)
    ax.tick_params(labelbottom=True)  # under every panel, shared axis or not
    ax.set_xlabel(SECONDS, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _target(ax: Any, value: float, label: str, style: str = "--") -> None:
    ax.axhline(value, color="black", linestyle=style, linewidth=0.8, label=label)


def _latency(plt: Any, samples: list[Sample], share: float, title: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(13, 4.8))
    fig.suptitle(title, fontsize=11)
    t = [s.t for s in samples]
    _shade(ax, samples, share)
    for key, style, label in (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99")):
        values = [s.latency_ms[key] if s.latency_ms.get("count") else None for s in samples]
        ax.plot(t, nan(values), style, color="tab:blue", linewidth=1, label=f"{label} per window")
    _target(ax, TARGET_P50_MS, f"target p50 ≤ {TARGET_P50_MS:g} ms", "-")
    _target(ax, TARGET_P99_MS, f"target p99 ≤ {TARGET_P99_MS:g} ms")
    ax.set_yscale("log")
    empty = [s.t for s in samples if not s.latency_ms.get("count")]
    if empty:
        bottom = ax.get_ylim()[0]
        ax.plot(empty, [bottom] * len(empty), "x", color="tab:red", label="no quote readable")
    ax.set_title("e2e latency: publish → readable in Redis (latency probe), per window", fontsize=9)
    _finish(ax, "ms (log scale)", zero=False)
    return save(plt, fig, out / "latency.png")


def _panel(
    plt: Any,
    ax: Any,
    samples: list[Sample],
    share: float,
    series: dict[str, list[float | None]],
    *,
    title: str,
    unit: str,
    target: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """One panel of lines over time, shaded and labelled; the line drawn for each series."""
    t = [s.t for s in samples]
    _shade(ax, samples, share)
    lines = {}
    for name, values in series.items():
        (lines[name],) = ax.plot(
            t, nan(values), linewidth=1.8 if name == "broker" else 1, label=name
        )
    ax.set_title(title, fontsize=9)
    ax.yaxis.set_major_formatter(thousands(plt))
    if target is not None:
        _target(ax, *target)
    _finish(ax, unit, target=target[0] if target else None)
    return lines


def _lag(plt: Any, samples: list[Sample], share: float, title: str, out: Path) -> Path:
    fig, axes = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True)
    fig.suptitle(title, fontsize=11)
    services = sorted({name for s in samples for name in s.lag})
    for ax, field, unit, what, target in (
        (
            axes[0],
            "time_lag_s",
            "seconds behind",
            "time lag (worst partition)",
            (TARGET_TIME_LAG_S, f"target ≤ {TARGET_TIME_LAG_S:g} s"),
        ),
        (axes[1], "offset_lag", "records waiting", "offset lag (all its partitions)", None),
    ):
        series = {
            name: [getattr(s.lag[name], field) if name in s.lag else None for s in samples]
            for name in services
        }
        lines = _panel(
            plt,
            ax,
            samples,
            share,
            series,
            title=f"{what} per service, as `marketfeed lag` reads it",
            unit=unit,
            target=target,
        )
        for name, values in series.items():
            # Where `marketfeed lag` called it stalled or down, say so on the line.
            bad = [
                (s.t, v or 0.0)
                for s, v in zip(samples, values, strict=True)
                if name in s.lag and s.lag[name].state in ("stalled", "down")
            ]
            if bad:
                ax.plot(
                    *zip(*bad, strict=True),
                    "x",
                    color=lines[name].get_color(),
                    label=f"{name}: stalled / down",
                )
        # A sample the monitor could not take (the broker or Redis did not answer in time) has
        # no value: a gap in the lines, marked along the bottom.
        missing = [s.t for s in samples if any(g.state == "unavailable" for g in s.lag.values())]
        if missing:
            ax.plot(
                missing, [0] * len(missing), "|", color="grey", markersize=12, label="no reading"
            )
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save(plt, fig, out / "lag.png")


def _memory(plt: Any, samples: list[Sample], share: float, title: str, out: Path) -> Path:
    gens = [s.generations for s in samples]
    rows = 3 if any(g is not None for g in gens) else 2
    fig, axes = plt.subplots(rows, 1, figsize=(13, 3.6 * rows + 0.5), sharex=True)
    fig.suptitle(title, fontsize=11)
    t = [s.t for s in samples]
    processes = sorted({name for s in samples for name in s.rss_mb})
    broker = (TARGET_BROKER_RSS_MB, f"target: broker ≤ {TARGET_BROKER_RSS_MB:g} MB")
    for ax, field, unit, what, target in (
        (axes[0], "rss_mb", "MB resident", "memory (RSS) per process", broker),
        (axes[1], "cpu", "cores (CPU s per s)", "CPU per process", None),
    ):
        series = {name: [getattr(s, field).get(name) for s in samples] for name in processes}
        _panel(plt, ax, samples, share, series, title=what, unit=unit, target=target)
    if rows == 3:
        ax = axes[2]
        _shade(ax, samples, share)
        for field, style, label in (
            ("current", "-", "current generation"),
            ("existing", ":", "generations on the broker"),
            ("deleted", "--", "deleted so far"),
        ):
            values = [None if g is None else getattr(g, field) for g in gens]
            ax.step(t, nan(values), style, where="post", label=label)
        ax.set_title("generations of the quote topic (the broker's topic list)", fontsize=9)
        _finish(ax, "count")
    return save(plt, fig, out / "memory.png")
