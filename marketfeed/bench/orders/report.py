"""The orders benchmark's output: a Markdown report on stdout, and results.json."""

from __future__ import annotations

import statistics
from pathlib import Path

from marketfeed.bench.core.report import DASH, ms, shown, table, write_json
from marketfeed.bench.orders.env import ECHO, ORDER_ENTRY
from marketfeed.bench.orders.results import (
    JoinResults,
    OrdersResults,
    ProcessJoin,
    RateStep,
    TargetStep,
)

PERCENTILES = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")
OUTCOMES = ("order.filled", "order.cancelled", "order.rejected")


def _s(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f} s"


def _ms(value: float | None) -> str:
    return ms(value, 1)


def _x(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def _spread(values: list[float]) -> str:
    if not values:
        return DASH
    if len(values) == 1:
        return _s(values[0])
    return (
        f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f},"
        f" {len(values)} starts)"
    )


def _header(results: OrdersResults) -> str:
    c, env = results.config, results.environment
    return (
        f"# marketfeed bench orders\n\n{c['symbols']:,} symbols on {c['partitions']} partitions, "
        f"order_entry trades the first {c['tradable']}; quotes published at "
        f"{c['quote_rate']:,.0f} msg/s throughout; {c['duration']:g} s steps after "
        f"{c['warmup']:g} s warm-up; closed loop (max) with {c['window']} orders outstanding; "
        f"order_entry --rebalance-timeout {c['rebalance_timeout']:g}; {env['cpus']} CPUs; "
        f"broker: {env['broker']}."
    )


def _breakdown(process: ProcessJoin) -> str:
    if process.spawn_to_assigned_s is None:
        return "no orders:meta: no breakdown"
    return (
        f"given {process.partitions} partitions at {_s(process.spawn_to_assigned_s)}, its "
        f"quote cache warm for them {_s(process.assigned_to_warm_s)} later"
    )


def _join_section(join: JoinResults) -> str:
    first, second = join.first, join.second
    rows = [
        [
            "first order_entry: spawn -> first order FILLED",
            _s(first.spawn_to_fill_s),
            _breakdown(first),
        ],
        [
            f"second order_entry ({second.method}): spawn -> serving",
            _s(second.process.spawn_to_fill_s),
            _breakdown(second.process)
            + ("; serving = a first order FILLED on its partitions" if second.rebalanced_s else ""),
        ],
        [
            "  group rebalanced (both warm on disjoint shares)",
            _s(second.rebalanced_s),
            f"orders held up to {_ms(second.held_max_ms)} ms meanwhile (median before: "
            f"{_ms(second.usual_ms)} ms)",
        ],
        [
            "second stopped -> first holds every partition, warm",
            _s(second.takeover_s),
            f"a former partition of the second FILLED at {_s(second.takeover_fill_s)}; orders "
            f"held up to {_ms(second.takeover_held_max_ms)} ms",
        ],
        [
            "order_entry of each step: spawn -> first FILLED",
            _spread(join.later_fill_s),
            "fresh topics each",
        ],
        [
            "echo baseline: spawn -> first answer",
            _spread(join.echo_first_answer_s),
            "no consumer group: it assigns its partitions itself",
        ],
    ]
    text = "## Join and warm\n\n" + table(["", "time", "detail"], rows)
    if second.note:
        text += f"\n\nNote: {second.note}."
    return text


def _latency_cells(t: TargetStep) -> list[str]:
    mark = ">= " if t.latency_lower_bound else ""
    if not t.latency_ms.get("count"):
        return [DASH] * len(PERCENTILES)
    return [mark + _ms(t.latency_ms[p]) for p in PERCENTILES]


def _lag(t: TargetStep) -> str:
    if t.cache_lag_records is None or t.cache_lag_s is None:
        return DASH
    return f"{t.cache_lag_records:,} rec / {t.cache_lag_s:.2f} s"


def _steps_table(steps: list[RateStep]) -> str:
    rows = []
    for step in steps:
        for name in (ORDER_ENTRY, ECHO):
            t = step.targets[name]
            outcomes = "/".join(str(t.outcomes.get(k, 0)) for k in OUTCOMES)
            if t.reject_reasons:
                reasons = sorted(t.reject_reasons.items(), key=lambda kv: -kv[1])
                outcomes += " (" + ", ".join(f"{r} {n:,}" for r, n in reasons) + ")"
            rows.append(
                [
                    step.label,
                    name,
                    f"{t.achieved_rate:,.0f}",
                    *_latency_cells(t),
                    f"{t.unanswered:,} of {t.sent:,}",
                    outcomes,
                    f"{t.quote_rate:,.0f}",
                    _lag(t),
                ]
            )
    headers = [
        "orders/s",
        "target",
        "achieved/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "no answer",
        "filled/cancelled/rejected",
        "quotes/s",
        "oe cache lag",
    ]
    return "## Rate steps\n\n" + table(headers, rows)


def _ratio_cell(step: RateStep, key: str) -> str:
    oe, echo = step.targets[ORDER_ENTRY], step.targets[ECHO]
    text = _x(step.ratios[key])
    if step.ratios[key] is None:
        return text
    if echo.latency_lower_bound:
        return text + " (baseline unanswered)"
    return (">= " if oe.latency_lower_bound else "") + text


def _ratio_table(steps: list[RateStep]) -> str:
    rows = [
        [
            step.label,
            _ratio_cell(step, "p50"),
            _ratio_cell(step, "p99"),
            _x(step.ratios["throughput"]),
        ]
        for step in steps
    ]
    return "## order_entry / echo baseline\n\n" + table(
        ["orders/s", "p50 latency", "p99 latency", "throughput"], rows
    )


def _cpu_table(steps: list[RateStep]) -> str:
    names: list[str] = []
    for step in steps:
        for t in step.targets.values():
            names += [n for n in t.cpu if n not in names]
    rows = []
    for step in steps:
        for target in (ORDER_ENTRY, ECHO):
            cpu = step.targets[target].cpu
            rows.append([step.label, target, *(_cores(cpu.get(n)) for n in names)])
    return "## CPU (cores) during each window\n\n" + table(["orders/s", "target", *names], rows)


def _cores(value: float | None) -> str:
    return shown(value, ".2f")


def render_markdown(results: OrdersResults) -> str:
    parts = [_header(results)]
    if results.join is not None:
        parts.append(_join_section(results.join))
    if results.steps:
        parts += [_steps_table(results.steps), _ratio_table(results.steps)]
        parts.append(_cpu_table(results.steps))
    if results.notes:
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in results.notes))
    return "\n\n".join(parts) + "\n"


def write_outputs(results: OrdersResults, out: Path) -> list[str]:
    """Write results.json; return lines to tell the user."""
    write_json(results, out)
    return [f"wrote results.json to {out}"]
