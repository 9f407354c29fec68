"""Printing the verdicts of ``marketfeed lag``: a table per service, or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from common.logs import redact_url
from marketfeed.lag.monitor import Report
from marketfeed.lag.rules import LagState


def render(reports: Sequence[Report]) -> str:
    blocks = [_render_one(r) for r in reports]
    return "\n\n".join(blocks) if blocks else "no caches to look at"


def _render_one(report: Report) -> str:
    lag, target = report.lag, report.target
    head = f"{lag.service:<12} {lag.state.upper():<8} {lag.reason}"
    if lag.state is LagState.DOWN and lag.heartbeat_age_s is None and not lag.partitions:
        where = redact_url(target.redis_url)
        return f"{head}\n  looked in {where} under {target.redis_prefix}meta"
    facts = [
        f"{lag.interest_count} symbols on {len(lag.partitions)} partitions",
        f"heartbeat {_seconds(lag.heartbeat_age_s)} ago",
        f"offset lag {lag.offset_lag:,}",
        f"time lag {_seconds(lag.time_lag_s)}",
        f"in {_rate(lag.in_rate)}/s",
        f"applied {_rate(lag.apply_rate)}/s",
    ]
    if report.newest:
        facts.append(f"feed generation {report.newest}")
    lines = [head, "  " + " · ".join(facts)]
    if lag.partitions:
        lines.append(
            f"  {'PART':>4} {'GEN':>5} {'HIGH WM':>12} {'APPLIED':>12} {'OFFSET LAG':>10} "
            f"{'TIME LAG':>9} {'IN/S':>9} {'APPLIED/S':>9}  STATE"
        )
        for p in lag.partitions:
            applied = "-" if p.applied_offset is None else f"{p.applied_offset:,}"
            generation = report.generations.get(p.partition, 0)
            lines.append(
                f"  {p.partition:>4} {generation:>5} {p.high_watermark:>12,} {applied:>12} "
                f"{p.offset_lag:>10,} "
                f"{_seconds(p.time_lag_s):>9} {_rate(p.in_rate):>9} {_rate(p.apply_rate):>9}"
                f"  {p.state}"
            )
    if lag.worst_fresh:
        ages = ", ".join(
            f"{s.symbol} {'no quote' if s.age_s is None else _seconds(s.age_s)}"
            for s in lag.worst_fresh
        )
        lines.append(f"  worst fresh: {ages}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value == 0:
        return "0"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def as_json(reports: Sequence[Report], *, indent: int | None = None) -> str:
    return json.dumps(
        {"time_ns": time.time_ns(), "services": [r.as_dict() for r in reports]}, indent=indent
    )


def healthy(reports: Sequence[Report]) -> bool:
    return not any(r.lag.state in (LagState.STALLED, LagState.DOWN) for r in reports)
