"""The soak's output: the Markdown report, results.json and the plots (also as checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketfeed.bench.core.report import DASH, ms, shown, table, write_files
from marketfeed.bench.soak.flat import STALE_QUOTE, merged, summarise
from marketfeed.bench.soak.plots import write_plots
from marketfeed.bench.soak.results import SOAK, Run, Sample, SoakResults

VERDICT = {True: "met", False: "NOT met", None: "inconclusive"}
TENTHS = 10


def _header(results: SoakResults) -> str:
    c, env = results.config, results.environment
    return (
        "# marketfeed bench soak\n\n"
        f"{c['rate']:,.0f} msg/s, {c['symbols']:,} symbols on {c['partitions']} partitions; "
        f"{c['duration']:g} s measured after {c['warmup']:g} s of warm-up, sampled every "
        f"{c['sample_every']:g} s; order_entry trades {c['tradable']} symbols (the latency "
        f"probe follows them), simulated orders {c['orders_rate']:g}/s; {env['cpus']} CPUs; "
        f"broker: {env['broker']}. **Ended: {results.ended}** after "
        f"{results.elapsed_s:,.0f} s, {len(results.samples)} samples."
    )


def _targets(results: SoakResults) -> str:
    targets = results.summary.get("targets", [])
    if not targets:
        return str(results.summary.get("note", "nothing measured"))
    rows = [[t["target"], t["measured"], VERDICT[t["met"]]] for t in targets]
    return table(["target (issue 10)", "measured", "verdict"], rows)


def _number(value: float | None, unit: str) -> str:
    if unit == "ms":
        return ms(value, 2)
    return shown(value, ",.3f" if unit in ("time lag, s", "CPU, cores") else ",.0f")


def _flat(results: SoakResults) -> str:
    rows = []
    for r in results.summary.get("flat", []):
        verdict = {True: "flat", False: "GREW", None: DASH}[r["flat"]]
        rows.append(
            [
                r["what"],
                r["unit"],
                _number(r["first"], r["unit"]),
                _number(r["last"], r["unit"]),
                shown(r["ratio"], ".2f") + ("x" if r["ratio"] is not None else ""),
                verdict + (f" (floor {r['floor']:g})" if r["floor"] else ""),
            ]
        )
    if not rows:
        return ""
    seg = results.config["segment"]
    return (
        f"## Did it stay flat? The last {seg:.0%} of the measured run vs its first\n\n"
        + table(["figure", "unit", "first", "last", "last ÷ first", "verdict"], rows)
        + f"\n\nFlat: last ≤ 1.2 x first ({results.summary['segments']}). Latency: the "
        "segment's windows merged; the rest: the mean of its samples. Where a figure starts "
        "below its floor (a caught-up cache has no lag), it is compared with the floor."
    )


def _chunks(samples: list[Sample]) -> list[list[int]]:
    measured = [i for i, s in enumerate(samples) if s.phase == SOAK]
    warmup = [i for i, s in enumerate(samples) if s.phase != SOAK]
    n = len(measured)
    parts = [measured[n * k // TENTHS : n * (k + 1) // TENTHS] for k in range(TENTHS)]
    return ([warmup] if warmup else []) + [p for p in parts if p]


def _lag_max(samples: list[Sample], idx: list[int], service: str) -> str:
    values = [samples[i].lag[service].time_lag_s for i in idx if service in samples[i].lag]
    known = [v for v in values if v is not None]
    if not values:
        return DASH
    worst = f"{max(known):.2f}" if known else "?"
    return worst + (" (?)" if len(known) < len(values) else "")


def _over_time(results: SoakResults, histograms: list[bytes]) -> str:
    samples = results.samples
    services = sorted({name for s in samples for name in s.lag})
    rows = []
    for idx in _chunks(samples):
        first, last = samples[idx[0]], samples[idx[-1]]
        p = merged(histograms, idx).percentiles() if histograms else None
        broker = [samples[i].rss_mb.get("broker") for i in idx]
        known = [b for b in broker if b is not None]
        stale_before = samples[idx[0] - 1].orders.get(STALE_QUOTE, 0) if idx[0] else 0
        gen = last.generations
        rows.append(
            [
                f"{first.start:,.0f}-{last.t:,.0f}" + (" (warm-up)" if first.phase != SOAK else ""),
                ms(p.p50_ms, 2) if p and p.count else DASH,
                ms(p.p99_ms, 2) if p and p.count else DASH,
                ms(p.max_ms, 1) if p and p.count else DASH,
                *(_lag_max(samples, idx, name) for name in services),
                f"{max(known):,.0f}" if known else DASH,
                str(gen.current) if gen is not None else "n/a",
                str(last.orders.get(STALE_QUOTE, 0) - stale_before),
            ]
        )
    headers = [
        "seconds",
        "e2e p50 ms",
        "e2e p99 ms",
        "e2e max ms",
        *(f"{name} time lag max s" for name in services),
        "broker RSS max MB",
        "generation",
        "STALE_QUOTE",
    ]
    return "## Over time (the warm-up, then the measured run in tenths)\n\n" + table(headers, rows)


def _generations(results: SoakResults) -> str:
    gens = [s.generations for s in results.samples if s.generations is not None]
    if not gens:
        return (
            "Generations: n/a: the quote topic is one plain topic on this broker (no "
            "`<quotes>.g<N>` topics were listed), so nothing rolled or was deleted."
        )
    last = gens[-1]
    most = max(g.existing for g in gens)
    return (
        f"Generations: {gens[0].current} → {last.current}: {last.rolled} rolled, "
        f"{last.deleted} deleted while the soak watched; at most {most} on the broker at once."
    )


def _orders(results: SoakResults) -> str:
    during: dict[str, int] = results.summary.get("orders_during", {})
    if not during:
        return "Orders: none answered during the measured run."
    kinds = ", ".join(
        f"{during.get(k, 0):,} {k.removeprefix('order.')}"
        for k in ("order.filled", "order.cancelled", "order.rejected")
    )
    reasons = ", ".join(
        f"{v:,} {k.split(':', 1)[1]}" for k, v in sorted(during.items()) if ":" in k
    )
    return f"Orders answered during the measured run: {kinds}" + (
        f" (rejected: {reasons})." if reasons else "."
    )


HOW = (
    "## How it is measured\n\n"
    "- **e2e latency**: publish (the quote's `ts_ns`) → readable in Redis, for every quote of "
    "the symbols order_entry trades, seen by a latency probe: a caching consumer of its own "
    "(the services' code, on its own Redis) whose hook runs when each batch is readable. A "
    "quote it applies serves every quote of its symbol published since the last one it "
    "applied (per-symbol sequence numbers), and each of those is counted at its latency, so a "
    "stall that ends in one conflated batch is not hidden (coordinated omission). "
    "HdrHistogram per window; a segment's percentiles are its windows merged.\n"
    "- **lag**: `marketfeed lag`'s own monitor and rules (offset lag against exact high "
    "watermarks, time lag, live / idle / stalled / down) for order_entry, portfolio and the "
    "probe, once per sample.\n"
    "- **memory and CPU**: `/proc/PID/status` (VmRSS) and `/proc/PID/stat` of every process: "
    "the embedded broker and Redis servers, the publisher, the services, the order flow and "
    "this process (which runs the probe).\n"
    "- **generations**: the broker's topic list at each sample.\n"
    "- **orders**: terminal events on `orders.events`, counted by kind and rejection reason."
)


def render_markdown(results: SoakResults, histograms: list[bytes] | None = None) -> str:
    parts = [
        _header(results),
        "## Targets\n\n" + _targets(results),
        _flat(results),
        _over_time(results, histograms or []) if results.samples else "",
        _generations(results) + "\n\n" + _orders(results),
        HOW,
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def conclude(run: Run) -> SoakResults:
    """The run's results with their segments and verdicts worked out."""
    results = run.results
    results.segments, results.summary = summarise(
        results.samples, run.histograms, float(results.config["segment"])
    )
    return results


def write_outputs(run: Run, out: Path) -> list[str]:
    """Write results.json, report.md and the plots; return lines to tell the user."""
    results = conclude(run)
    return write_files(results, out, render_markdown(results, run.histograms), write_plots)


def checkpoint(out: Path | None) -> Any:
    """What the sampler calls now and then: the files so far, without the plots."""

    def save(run: Run) -> None:
        if out is not None:
            results = conclude(run)
            write_files(results, out, render_markdown(results, run.histograms))

    return save
