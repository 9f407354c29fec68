"""The figures of one orders-benchmark run, as plain dataclasses (results.json is ``asdict``).

Times are seconds unless the name says ms; rates are per second. Latency percentiles are in ms
with the keys of common.metrics.Percentiles.as_dict. CPU is in cores (CPU seconds per second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ProcessJoin:
    """One order_entry process, from its spawn to serving orders."""

    spawn_to_fill_s: float | None  # the first probe order answered FILLED (on its partitions)
    spawn_to_assigned_s: float | None  # faust handed it its order partitions (orders:meta)
    assigned_to_warm_s: float | None  # its quote cache held their quotes (orders:meta)
    partitions: int | None  # order partitions it was given


@dataclass(slots=True)
class SecondJoin:
    """A second order_entry joining the group of the first, then leaving it."""

    method: str  # "orders:meta", or "probing" when order_entry does not write orders:meta
    process: ProcessJoin
    rebalanced_s: float | None  # spawn -> both processes report disjoint shares of every partition
    usual_ms: float  # median latency of the probe orders before the second process started
    held_max_ms: float  # the longest a probe order waited while the group rebalanced
    takeover_s: float | None  # its stop -> the first process holds every partition again, warm
    takeover_fill_s: float | None  # its stop -> a probe on one of its former partitions FILLED
    takeover_held_max_ms: float
    note: str = ""


@dataclass(slots=True)
class JoinResults:
    first: ProcessJoin
    second: SecondJoin
    # spawn -> first FILLED of each order_entry started later (a fresh step's), and of each
    # echo baseline (no group: it assigns its partitions itself).
    later_fill_s: list[float] = field(default_factory=list)
    echo_first_answer_s: list[float] = field(default_factory=list)


@dataclass(slots=True)
class TargetStep:
    """One rate step against one target (order_entry, or the echo baseline)."""

    target: str
    window_s: float
    sent: int  # orders intended inside the window
    answered: int
    unanswered: int  # no terminal event within answer_timeout after the window
    send_failed: int
    achieved_rate: float  # terminal events arrived in the window / its length
    latency_ms: dict[str, float]  # intended send -> terminal event
    latency_lower_bound: bool  # unanswered orders are in it at the latency they had reached
    outcomes: dict[str, int]  # terminal event type -> count, measured orders
    reject_reasons: dict[str, int]  # OrderRejected reason -> count, measured orders
    quote_rate: float  # records/s the publisher added to md.quotes during the window
    # order_entry's quote cache at the end of the window: records waiting on its partitions,
    # and now - the Kafka timestamp of the last record applied on its worst partition.
    cache_lag_records: int | None
    cache_lag_s: float | None
    cpu: dict[str, float | None]


@dataclass(slots=True)
class RateStep:
    label: str  # "100" or "max"
    target_rate: float | None  # None: closed loop
    topics: str  # "fresh" or "shared with the join phase"
    targets: dict[str, TargetStep]  # "echo" (run first), "order_entry"
    ratios: dict[str, float | None]  # order_entry / echo: p50, p99, throughput


@dataclass(slots=True)
class OrdersResults:
    config: dict[str, Any]
    environment: dict[str, Any]
    join: JoinResults | None = None
    steps: list[RateStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


def ratios(order_entry: TargetStep, echo: TargetStep) -> dict[str, float | None]:
    def p(step: TargetStep, key: str) -> float | None:
        return step.latency_ms.get(key) if step.latency_ms.get("count") else None

    return {
        "p50": ratio(p(order_entry, "p50_ms"), p(echo, "p50_ms")),
        "p99": ratio(p(order_entry, "p99_ms"), p(echo, "p99_ms")),
        "throughput": ratio(order_entry.achieved_rate, echo.achieved_rate),
    }
