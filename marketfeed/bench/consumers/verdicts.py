"""The verdicts of the consumer benchmark, each with its definition (no I/O).

The report prints :func:`definitions` beside its tables, so the words a reader sees and the
rules the code applies are written in one place:

- **kept up**, over the measurement window: the lag's trend (:func:`trend`) is *within the
  bound* or *catching up*; *growing* and *behind the bound* are not keeping up;
- **caught up**, after the pause: back to its caught-up level (:func:`caught_up_level`) within
  the catch-up timeout;
- **bounded**, the step's verdict (:func:`bounded`): kept up, and caught up after the pause if
  it was paused. A consumer that kept pace during the window but never came back from a pause
  did not have bounded lag at that rate: it has no headroom.
- **reads**: the share of the topic's records that were published to the partitions it reads,
  over the window (at most 100 %); what it *received* is a throughput (it includes the backlog
  it drained), not a share, and is reported as a rate.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marketfeed.bench.consumers.lag import Lag


class Trend(enum.StrEnum):
    """How a consumer's lag moved over the measurement window (the value is the report's)."""

    WITHIN = "within the bound"  # ends within the bound, grew by less than half of it
    CATCHING_UP = "catching up"  # fell by at least half the bound (a start-up backlog drains)
    GROWING = "growing"  # grew by more than half the bound: slower than the feed
    BEHIND = "behind the bound"  # ends beyond the bound, neither growing nor falling by half


def trend(start_s: float, end_s: float, bound_s: float) -> Trend:
    """The trend of a lag that went from ``start_s`` to ``end_s`` seconds of feed."""
    if start_s - end_s >= bound_s / 2:
        return Trend.CATCHING_UP
    if end_s - start_s > bound_s / 2:
        return Trend.GROWING
    if end_s > bound_s:
        return Trend.BEHIND
    return Trend.WITHIN


@dataclass(frozen=True, slots=True)
class LagStats:
    offset_p99: float
    offset_max: int
    time_p99_ms: float
    time_max_ms: float
    # Offset lag at the start and at the end of the window, in seconds of feed.
    start_s: float
    end_s: float
    trend: Trend

    @property
    def kept_up(self) -> bool:
        return self.trend in (Trend.WITHIN, Trend.CATCHING_UP)


def lag_stats(lags: Sequence[Lag], feed_rate: float, bound_s: float) -> LagStats:
    """Percentiles of the lag over the measurement window, and its trend.

    The start and the end are the medians of the first and the last fifth of the samples, so
    that one slow fetch does not decide; both are in seconds of feed (offset lag / the feed
    rate on its partitions). Over a 10 s window with the default 1 s bound, a consumer 5 %
    slower than the feed grows by 0.5 s: *growing*; the broker's own jitter here (a few tenths
    of a second) is not.
    """
    offsets = np.array([lag.offset for lag in lags], dtype=np.float64)
    times = np.array([lag.time_ms for lag in lags], dtype=np.float64)
    if offsets.size == 0:
        return LagStats(0.0, 0, 0.0, 0.0, 0.0, 0.0, Trend.WITHIN)
    k = max(1, offsets.size // 5)
    per_s = max(feed_rate, 1.0)
    start = float(np.median(offsets[:k])) / per_s
    end = float(np.median(offsets[-k:])) / per_s
    return LagStats(
        offset_p99=float(np.percentile(offsets, 99)),
        offset_max=int(offsets.max()),
        time_p99_ms=float(np.percentile(times, 99)),
        time_max_ms=float(times.max()),
        start_s=start,
        end_s=end,
        trend=trend(start, end, bound_s),
    )


def caught_up_level(lags: Sequence[Lag], feed_rate: float) -> float:
    """Offset lag at or below which a resumed consumer counts as caught up.

    Back within its own steady range (the 99th percentile of its lag during the window), but
    never asking for less than 100 ms of feed (catch-up is sampled every 100 ms) or 50 records.
    """
    steady = float(np.percentile([lag.offset for lag in lags], 99)) if lags else 0.0
    return max(steady, 0.1 * feed_rate, 50.0)


def bounded(lag: LagStats | None, caught_up: bool | None) -> bool | None:
    """The step's verdict: kept up, and caught up if paused (``caught_up`` None: not paused).

    None when the consumer was not measured.
    """
    if lag is None:
        return None
    return lag.kept_up and caught_up is not False


def read_share(on_its_partitions: int, on_topic: int) -> float | None:
    """Records published to the partitions it reads / to the whole topic (None if none)."""
    if on_topic <= 0:
        return None
    return min(1.0, max(0.0, on_its_partitions / on_topic))


def definitions(*, window_s: float, sample_s: float, bound_s: float, timeout_s: float) -> str:
    """The report's definitions of its verdicts, with this run's numbers."""
    return "\n".join(
        [
            f"- **kept up** (over the {window_s:g} s measurement window, lag sampled every "
            f"{sample_s * 1000:.0f} ms): *start* and *end* are the medians of the window's "
            "first and last fifth of offset-lag samples, in seconds of feed (records waiting "
            "/ records per second published to its partitions). The trend is *catching up* "
            f"when the lag fell by ≥ {bound_s / 2:g} s, *growing* when it rose by more than "
            f"{bound_s / 2:g} s, *behind the bound* when it ends above {bound_s:g} s, else "
            "*within the bound*. It kept up when within the bound or catching up.",
            "- **caught up** (after the pause: frozen with SIGSTOP while the feed goes on, "
            "then resumed): its offset lag came back to its caught-up level, the 99th "
            "percentile of its lag during the window (at least 100 ms of feed or 50 records), "
            f"within {timeout_s:g} s of the resume; the time is from the resume to the first "
            "sample at that level, the rate is records done meanwhile per second. Only "
            "consumers that kept up are paused.",
            "- **bounded** (the step): kept up, and caught up if it was paused. The highest "
            "bounded step is the rate a consumer sustains.",
            "- **reads**: records published to the partitions it reads / to the whole topic, "
            "over the window (at most 100 %: the caching consumer reads only the partitions "
            "of its symbols); **decoded**: records decoded / records it received; "
            "**conflated**: quotes dropped for a newer one of the same symbol in the same "
            "batch / quotes decoded; **done rec/s**: records it moved past per second "
            "(more than the feed while it drains a backlog).",
        ]
    )
