"""The words of a lag verdict: states, thresholds, a stalled partition and how it is told.

No I/O, and nothing about how lag is counted (that is ``marketfeed.lag.rules``): the states a
partition or a service can be in and which is worse (:func:`worst_state`), the thresholds the
rules judge by, and the one line that names every stalled partition (:func:`stalled_reason`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class LagState(enum.StrEnum):
    """A partition's or a service's state; the value is what ``--json`` prints."""

    LIVE = "live"
    IDLE = "idle"
    STALLED = "stalled"
    DOWN = "down"  # a service only


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    stale_after_s: float = 3.0  # heartbeat older than this: stalled (it beats about every 1 s)
    down_after_s: float = 5.0  # no heartbeat for this long: down
    stall_after_s: float = 1.0  # applied offset stuck this long with records waiting: stalled


@dataclass(frozen=True, slots=True, kw_only=True)
class Stall:
    """A stalled partition: where its applied offset is stuck, for how long, and what waits."""

    partition: int
    applied_offset: int | None
    stuck_s: float  # since the first sample of the run that saw it stuck
    first_lag: int  # offset lag at that first sample
    lag: int  # offset lag now


_SEVERITY = {LagState.IDLE: 0, LagState.LIVE: 1, LagState.STALLED: 2, LagState.DOWN: 3}


def worst_state(states: Iterable[LagState]) -> LagState:
    """The worst of some states (down, stalled, live, idle in that order); idle if none."""
    return max(states, key=_SEVERITY.__getitem__, default=LagState.IDLE)


def stalled_reason(stalls: Sequence[Stall], assigned: int) -> str:
    """Which partitions are stalled, and the one stuck longest, in one line.

    ``3 of 16 partitions stalled: 0-1, 7 (records waiting, applied offset not moving), 9,500
    records; longest: partition 7 stuck at 1,234 for 19.0s, offset lag 200 -> 3,000``
    """
    if not stalls:
        return "no partition stalled"
    worst = max(stalls, key=lambda s: (s.stuck_s, s.lag))
    at = "-" if worst.applied_offset is None else f"{worst.applied_offset:,}"
    return (
        f"{len(stalls)} of {assigned} partitions stalled: "
        f"{number_ranges(s.partition for s in stalls)} (records waiting, applied offset not "
        f"moving), {sum(s.lag for s in stalls):,} records; longest: partition "
        f"{worst.partition} stuck at {at} for {worst.stuck_s:.1f}s, offset lag "
        f"{worst.first_lag:,} -> {worst.lag:,}"
    )


def number_ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
