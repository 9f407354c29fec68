"""The consumer benchmark's output: the Markdown report, results.json and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketfeed.bench.consumers import signing
from marketfeed.bench.consumers.plots import write_plots
from marketfeed.bench.consumers.results import ConsumerStep, Results
from marketfeed.bench.consumers.settings import Plan
from marketfeed.bench.consumers.verdicts import definitions
from marketfeed.bench.core.report import DASH, ms, shown, table, write_files

# -- Markdown ------------------------------------------------------------------------------


def _at_least(entry: dict[str, Any]) -> str:
    return ">= " if entry["lower_bound"] and entry["step"] else ""


def _num(value: float | None, digits: int = 0) -> str:
    return shown(value, f",.{digits}f")


def _ms(value: float | None) -> str:
    return ms(value, 2)


def _share(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def _header(results: Results) -> str:
    c, env = results.config, results.environment
    partitions = c["partitions"]
    caching_parts = next(
        (
            s.consumers["caching"].partitions
            for s in results.steps
            if "caching" in s.consumers and s.consumers["caching"].measured
        ),
        None,
    )
    interest = max(1, round(c["interest"] * c["symbols"]))
    lines = [
        "# marketfeed bench consumers",
        "",
        f"{c['symbols']:,} symbols on {partitions} partitions; caching consumer interest "
        f"{c['interest']:.0%} ({interest} symbols"
        + (f" on {caching_parts} of {partitions} partitions" if caching_parts else "")
        + f"); {c['duration']:g} s steps after {c['warmup']:g} s warm-up, each on fresh topics; "
        f"pauses of {c['pause']:g} s; fetch_max_wait_ms {c['fetch_max_wait_ms']}; publisher cycle "
        f"{c.get('cycle_ms', '?')} ms; {env['cpus']} CPUs; broker: {env['broker']}.",
    ]
    return "\n".join(lines)


def _publisher_table(results: Results) -> str:
    rows = []
    for s in results.steps:
        late = s.publisher.lateness_ms
        rows.append(
            [
                s.label,
                _num(s.publisher.achieved_rate),
                _num(s.publisher.quote_rate),
                f"{_ms(late['p50_ms'])} / {_ms(late['p99_ms'])}" if late else "unthrottled",
                str(s.publisher.failed),
                _num(s.publisher.cpu, 2),
                _num(s.servers_cpu.get("broker"), 2),
            ]
        )
    return table(
        [
            "rate msg/s",
            "achieved msg/s",
            "quotes/s",
            "lateness p50 / p99 ms",
            "failed",
            "CPU publisher",
            "CPU broker",
        ],
        rows,
    )


def _latency_table(results: Results) -> str:
    rows = []
    for s in results.steps:
        for name, c in s.consumers.items():
            if not c.measured:
                rows.append([s.label, name, DASH, DASH, DASH, DASH, DASH, DASH])
                continue
            lat = c.latency_ms
            rows.append(
                [
                    s.label,
                    name + (" *" if name == "bare" else ""),
                    _num(lat["count"]),
                    _ms(lat["p50_ms"]),
                    _ms(lat["p90_ms"]),
                    _ms(lat["p99_ms"]),
                    _ms(lat["p99.9_ms"]),
                    _ms(lat["max_ms"]),
                ]
            )
    return table(["rate", "consumer", "samples", "p50", "p90", "p99", "p99.9", "max"], rows)


def _caught_up_cell(c: ConsumerStep) -> str:
    cu = c.catch_up
    if cu is None:
        return "not paused" if c.lag is not None and not c.lag.kept_up else DASH
    if not cu.caught_up:
        return "NO"
    multiple = f", {cu.multiple:.1f}x feed" if cu.multiple is not None else ""
    return f"{cu.time_s:.2f} s{multiple}"


def _kept_up_cell(c: ConsumerStep) -> str:
    lag = c.lag
    assert lag is not None
    moved = f"{lag.start_s:.2f} → {lag.end_s:.2f} s"
    return f"{'yes' if lag.kept_up else 'NO'} ({lag.trend}: {moved})"


def _lag_table(results: Results) -> str:
    rows = []
    for s in results.steps:
        for name, c in s.consumers.items():
            if not c.measured or c.lag is None:
                rows.append([s.label, name, c.note or DASH, *[DASH] * 9])
                continue
            lag = c.lag
            rows.append(
                [
                    s.label,
                    name,
                    _num(c.consumed_rate),
                    _share(c.read_share),
                    _share(c.decoded_share),
                    _share(c.conflation),
                    f"{_num(lag.offset_p99)} / {_num(lag.offset_max)}",
                    f"{_ms(lag.time_p99_ms)} / {_ms(lag.time_max_ms)}",
                    _kept_up_cell(c),
                    _caught_up_cell(c),
                    "yes" if c.bounded else "NO",
                    _num(c.cpu, 2),
                ]
            )
    return table(
        [
            "rate",
            "consumer",
            "done rec/s",
            "reads",
            "decoded",
            "conflated",
            "offset lag p99 / max",
            "time lag p99 / max ms",
            "kept up (window lag)",
            "caught up",
            "bounded",
            "CPU",
        ],
        rows,
    )


def _summary_table(results: Results) -> str:
    summary = results.summary
    ratios = summary["ratios"]
    rows = []
    for name, entry in summary["sustained"].items():
        ratio = ratios.get(f"caching_vs_{name}") if name != "caching" else None
        catch = ratios.get(f"catch_up_caching_vs_{name}") if name != "caching" else None
        rows.append(
            [
                name,
                _at_least(entry) + (entry["step"] or "none"),
                _num(entry["quote_rate"]),
                entry["first_unbounded"] or "never",
                (f"{'>= ' if ratio['at_least'] else ''}{ratio['value']:.1f}x" if ratio else DASH),
                (f"{catch['value']:.1f}x at {catch['step']}" if catch else DASH),
            ]
        )
    return table(
        [
            "consumer",
            "highest bounded step",
            "quotes/s there",
            "first unbounded",
            "caching ÷ this (sustained)",
            "caching ÷ this (catch-up rate)",
        ],
        rows,
    )


def _targets_table(results: Results) -> str:
    verdict = {True: "met", False: "NOT met", None: "inconclusive"}
    rows = [[t["target"], t["measured"], verdict[t["met"]]] for t in results.summary["targets"]]
    return table(["target (issue 5)", "measured", "verdict"], rows) if rows else ""


def _get_quote_table(results: Results) -> str:
    g = results.get_quote
    if g is None:
        return ""
    rows = [
        [
            "QuoteReader.get",
            f"{g.reader.p50_us:.0f}",
            f"{g.reader.p99_us:.0f}",
            f"{g.reader.p50_us / g.raw_get.p50_us:.2f}x" if g.raw_get.p50_us else DASH,
        ],
        [
            "raw redis-py GET (baseline)",
            f"{g.raw_get.p50_us:.0f}",
            f"{g.raw_get.p99_us:.0f}",
            "1.00x",
        ],
    ]
    if g.redis_benchmark:
        rows.append(
            [
                "redis-benchmark GET",
                f"{g.redis_benchmark.p50_us:.0f}",
                f"{g.redis_benchmark.p99_us:.0f}",
                DASH,
            ]
        )
    return (
        table(["get quote (same key, same server)", "p50 µs", "p99 µs", "p50 ÷ raw GET"], rows)
        + f"\n\n{g.samples:,} calls each, interleaved, at the first rate; {g.note}."
    )


def _definitions(results: Results) -> str:
    c = results.config
    plan = Plan(
        rates=(),
        duration=c["duration"],
        pause=c["pause"],
        warmup=c["warmup"],
        lag_bound=c["lag_bound"],
    )
    return definitions(
        window_s=plan.duration,
        sample_s=plan.sample_every,
        bound_s=plan.lag_bound,
        timeout_s=plan.catch_up_timeout,
    )


def render_markdown(results: Results) -> str:
    parts = [
        _header(results),
        "## Publisher\n\n" + _publisher_table(results),
        "## Publish → readable in Redis, ms (HdrHistogram)\n\n"
        + _latency_table(results)
        + "\n\n\\* bare: publish → fetched, from Kafka record timestamps (1 ms resolution).",
        "## Lag, throughput, catch-up\n\n"
        + _lag_table(results)
        + "\n\nCPU in cores. What each verdict means:\n\n"
        + _definitions(results),
        "## Highest rate with bounded lag\n\n" + _summary_table(results),
    ]
    verifying = signing.render(results.summary.get("signing", []))
    if verifying:
        parts.append(
            "## Signature verification: caching (verifying) ÷ caching-unsigned\n\n" + verifying
        )
    targets = _targets_table(results)
    if targets:
        parts.append("## Targets\n\n" + targets)
    get_quote = _get_quote_table(results)
    if get_quote:
        parts.append("## get quote\n\n" + get_quote)
    return "\n\n".join(parts) + "\n"


# -- files ---------------------------------------------------------------------------------


def write_outputs(results: Results, out: Path) -> list[str]:
    """Write results.json, report.md and the plots; return lines to tell the user."""
    return write_files(results, out, render_markdown(results), write_plots)
