"""The arithmetic of ``marketfeed lag``: samples of a cache and the broker in, lag and state out.

No I/O: ``marketfeed.lag`` takes the samples, this module judges them, so every rule below is
unit-tested without servers.

Per assigned partition:

- **offset lag** = exact high watermark - (applied offset + 1), never below 0 (the cache may
  have applied a record the watermark read just before did not count yet). The applied offset,
  not the committed one, which saw-tooths with the commit interval.
- **time lag** = now - publish time of the last applied record, and 0 when the offset lag is 0:
  a consumer that is caught up is not behind, however long ago the feed last spoke (a quiet feed
  is *idle*, never hours of lag). The publish time is the quote's own ``ts_ns``, or the Kafka
  timestamp of the last record when that is later (the cache also moves past records of
  symbols it filters out, and records only their Kafka timestamp). When a partition was seen
  caught up at an earlier sample, its time lag is at most the time since then: whatever it has
  not applied arrived after that, so a burst after a long quiet spell is not hours of lag.
- **rates**: records/s arriving (high watermark change) and applied (applied offset change)
  between two samples.

A partition is **stalled** when records wait on it (offset lag > 0) and its applied offset has
not moved for ``stall_after_s``, across two samples at least (so that a record which arrived
just before one look is not taken for a stall).

Per service, in this order: **down** (no cache meta at all: the consumer never started; or no
heartbeat for ``down_after_s``), **stalled** (heartbeat older than ``stale_after_s``; or a
stalled partition while no partition's applied offset moved since the previous sample: the
consumer has stopped while lag waits or grows), **idle** (every partition caught up and no
record arrived since the previous sample: the feed is quiet), else **live**. A consumer that
moves on some partitions while others are stalled is live, and the reason names the stalled
ones (under load the embedded broker serves a few partitions per fetch, and one partition can
wait a second or two while the consumer as a whole makes progress).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LIVE = "live"
IDLE = "idle"
STALLED = "stalled"
DOWN = "down"

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    stale_after_s: float = 3.0  # heartbeat older than this: stalled (it beats about every 1 s)
    down_after_s: float = 5.0  # no heartbeat for this long: down
    stall_after_s: float = 1.0  # applied offset stuck this long with records waiting: stalled


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionSample:
    partition: int
    high_watermark: int  # exact, from the broker (the offset the next record will get)
    applied_offset: int | None  # offset of the last record the cache applied
    quote_ts_ns: int | None = None  # publish time of the last quote applied
    kafka_ts_ms: int | None = None  # Kafka timestamp of the last record applied

    @property
    def next_offset(self) -> int:
        """Where the consumer stands: one past the last applied record (0 if none)."""
        return 0 if self.applied_offset is None else self.applied_offset + 1

    @property
    def offset_lag(self) -> int:
        return offset_lag(self.high_watermark, self.applied_offset)

    @property
    def position_ts_ns(self) -> int | None:
        """Publish time of the last record applied, as well as the cache knows it."""
        known = [
            t
            for t in (
                self.quote_ts_ns,
                None if self.kafka_ts_ms is None else self.kafka_ts_ms * 1_000_000,
            )
            if t is not None
        ]
        return max(known) if known else None


@dataclass(frozen=True, slots=True)
class SymbolAge:
    symbol: str
    age_s: float | None  # now - publish time of the cached quote; None: nothing cached


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSample:
    """One look at one service's cache and the broker, taken in that order's reverse.

    The watermarks are read first (at ``began_ns``), the cache after (done at ``now_ns``), so an
    offset lag is never inflated by records published while the cache was being read.
    """

    service: str
    began_ns: int  # wall clock (time.time_ns(), the clock of publish times and heartbeats)
    now_ns: int
    has_meta: bool = True
    heartbeat_ns: int | None = None  # last sign of life: heartbeat, else start time
    partitions: Mapping[int, PartitionSample] = field(default_factory=dict)
    interest_count: int = 0
    worst_fresh: tuple[SymbolAge, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionLag:
    partition: int
    high_watermark: int
    applied_offset: int | None
    offset_lag: int
    time_lag_s: float | None  # None: behind, but no publish time known yet
    in_rate: float | None  # records/s arriving; None on the first sample
    apply_rate: float | None  # records/s the cache moved past
    state: str  # live | idle | stalled

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "high_watermark": self.high_watermark,
            "applied_offset": self.applied_offset,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
            "in_rate": _round(self.in_rate, 1),
            "apply_rate": _round(self.apply_rate, 1),
            "state": self.state,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceLag:
    service: str
    state: str  # live | idle | stalled | down
    reason: str
    heartbeat_age_s: float | None
    interest_count: int = 0
    partitions: tuple[PartitionLag, ...] = ()
    worst_fresh: tuple[SymbolAge, ...] = ()

    @property
    def offset_lag(self) -> int:
        return sum(p.offset_lag for p in self.partitions)

    @property
    def time_lag_s(self) -> float | None:
        """The worst partition's; None if a lagging partition has no publish time yet."""
        lags = [p.time_lag_s for p in self.partitions]
        if any(t is None for t in lags):
            return None
        return max((t for t in lags if t is not None), default=0.0)

    @property
    def in_rate(self) -> float | None:
        return _sum_rates(p.in_rate for p in self.partitions)

    @property
    def apply_rate(self) -> float | None:
        return _sum_rates(p.apply_rate for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "state": self.state,
            "reason": self.reason,
            "heartbeat_age_s": _round(self.heartbeat_age_s),
            "interest_count": self.interest_count,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
            "in_rate": _round(self.in_rate, 1),
            "apply_rate": _round(self.apply_rate, 1),
            "partitions": [p.as_dict() for p in self.partitions],
            "worst_fresh": [
                {"symbol": s.symbol, "age_s": _round(s.age_s)} for s in self.worst_fresh
            ],
        }


# -- the rules ---------------------------------------------------------------------------------


def offset_lag(high_watermark: int, applied_offset: int | None) -> int:
    """Records on the broker the cache has not applied; never negative."""
    position = 0 if applied_offset is None else applied_offset + 1
    return max(0, high_watermark - position)


def time_lag_s(
    lag: int, position_ts_ns: int | None, now_ns: int, caught_up_ns: int | None = None
) -> float | None:
    """How far behind in time: 0 when caught up; else now - publish time of the last applied.

    ``caught_up_ns``: when the partition was last seen caught up, which bounds the answer.
    """
    if lag <= 0:
        return 0.0
    bounds = [now_ns - t for t in (position_ts_ns, caught_up_ns) if t is not None]
    if not bounds:
        return None
    return max(0, min(bounds)) / _NS


def rate(before: int | None, after: int | None, seconds: float) -> float | None:
    """Per-second change of an offset; None when unknown or when it went backwards (a reset)."""
    if before is None or after is None or seconds <= 0 or after < before:
        return None
    return (after - before) / seconds


def worst_fresh(ages: Mapping[str, float | None], count: int) -> tuple[SymbolAge, ...]:
    """The ``count`` symbols with the oldest cached quote; uncached ones first."""
    ranked = sorted(
        ages.items(), key=lambda item: (item[1] is not None, -(item[1] or 0.0), item[0])
    )
    return tuple(SymbolAge(symbol, age) for symbol, age in ranked[: max(0, count)])


@dataclass(slots=True)
class _Stuck:
    since_ns: int  # began_ns of the first sample of the run
    applied_offset: int | None
    first_lag: int
    samples: int = 1


@dataclass(slots=True)
class _History:
    previous: CacheSample | None = None
    caught_up_ns: dict[int, int] = field(default_factory=dict)
    stuck: dict[int, _Stuck] = field(default_factory=dict)


class LagTracker:
    """Judges each new sample of a service against what it saw before (no I/O)."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self._history: dict[str, _History] = {}

    def update(self, sample: CacheSample) -> ServiceLag:
        history = self._history.setdefault(sample.service, _History())
        previous, history.previous = history.previous, sample
        limits = self.thresholds
        heartbeat_age = (
            max(0, sample.now_ns - sample.heartbeat_ns) / _NS
            if sample.heartbeat_ns is not None
            else None
        )
        if not sample.has_meta:
            history.caught_up_ns.clear()
            history.stuck.clear()
            return ServiceLag(
                service=sample.service,
                state=DOWN,
                reason="consumer never started (its cache has no meta)",
                heartbeat_age_s=None,
            )
        # Watermarks are read at the start of a sample, the cache at its end.
        in_seconds = (sample.began_ns - previous.began_ns) / _NS if previous else 0.0
        applied_seconds = (sample.now_ns - previous.now_ns) / _NS if previous else 0.0
        rows: list[PartitionLag] = []
        stalled: list[str] = []
        quiet = previous is not None
        moved = False
        for number, part in sorted(sample.partitions.items()):
            before = previous.partitions.get(number) if previous else None
            lag = part.offset_lag
            timed = time_lag_s(
                lag, part.position_ts_ns, sample.now_ns, history.caught_up_ns.get(number)
            )
            stuck = self._note_stuck(history, part, before, sample.began_ns)
            arrived = before is None or part.high_watermark != before.high_watermark
            quiet = quiet and not arrived
            moved = moved or (before is not None and before.applied_offset != part.applied_offset)
            if stuck is not None:
                state = STALLED
                stalled.append(
                    f"partition {number} applied offset stuck at {part.applied_offset} for "
                    f"{(sample.now_ns - stuck.since_ns) / _NS:.1f}s, offset lag "
                    f"{stuck.first_lag:,} -> {lag:,}"
                )
            elif lag == 0 and not arrived:
                state = IDLE
            else:
                state = LIVE
            rows.append(
                PartitionLag(
                    partition=number,
                    high_watermark=part.high_watermark,
                    applied_offset=part.applied_offset,
                    offset_lag=lag,
                    time_lag_s=timed,
                    in_rate=rate(
                        before.high_watermark if before else None, part.high_watermark, in_seconds
                    ),
                    apply_rate=rate(_position(before), _position(part), applied_seconds),
                    state=state,
                )
            )
            if lag == 0:
                history.caught_up_ns[number] = sample.began_ns
        for gone in set(history.caught_up_ns) - set(sample.partitions):
            del history.caught_up_ns[gone]
        for gone in set(history.stuck) - set(sample.partitions):
            del history.stuck[gone]

        total_lag = sum(r.offset_lag for r in rows)
        if heartbeat_age is None:
            state, reason = DOWN, "no heartbeat yet"
        elif heartbeat_age > limits.down_after_s:
            state, reason = DOWN, f"no heartbeat for {heartbeat_age:.1f}s"
        elif heartbeat_age > limits.stale_after_s:
            state, reason = STALLED, f"heartbeat {heartbeat_age:.1f}s old"
        elif stalled and not moved:
            state, reason = STALLED, "no progress: " + _some(stalled)
        elif not rows:
            state, reason = IDLE, "no partitions assigned (no symbols of interest)"
        elif total_lag == 0 and quiet:
            state, reason = IDLE, "caught up, feed quiet"
        elif total_lag == 0:
            state, reason = LIVE, "caught up"
        else:
            state, reason = LIVE, f"{total_lag:,} records behind, applying"
            if stalled:
                reason += "; but " + _some(stalled)
        return ServiceLag(
            service=sample.service,
            state=state,
            reason=reason,
            heartbeat_age_s=heartbeat_age,
            interest_count=sample.interest_count,
            partitions=tuple(rows),
            worst_fresh=sample.worst_fresh,
        )

    def _note_stuck(
        self,
        history: _History,
        part: PartitionSample,
        before: PartitionSample | None,
        began_ns: int,
    ) -> _Stuck | None:
        """Track runs of samples with records waiting and no progress; the run if it is a stall.

        Two samples at least, so that records which arrived just before one look are not
        taken for a stall; ``stall_after_s`` apart at least, so that one slow fetch is not.
        """
        number = part.partition
        moved = before is None or part.applied_offset != before.applied_offset
        if part.offset_lag == 0 or moved:
            history.stuck.pop(number, None)
            if part.offset_lag > 0:
                history.stuck[number] = _Stuck(began_ns, part.applied_offset, part.offset_lag)
            return None
        run = history.stuck.get(number)
        if run is None:
            history.stuck[number] = _Stuck(began_ns, part.applied_offset, part.offset_lag)
            return None
        run.samples += 1
        waited = (began_ns - run.since_ns) / _NS
        if run.samples >= 2 and waited >= self.thresholds.stall_after_s:
            return run
        return None


def _some(items: list[str], shown: int = 3) -> str:
    more = len(items) - shown
    return "; ".join(items[:shown]) + (f"; and {more} more partitions" if more > 0 else "")


def _position(part: PartitionSample | None) -> int | None:
    if part is None or part.applied_offset is None:
        return None
    return part.next_offset


def _sum_rates(rates: Iterable[float | None]) -> float | None:
    known = [r for r in rates if r is not None]
    return sum(known) if known else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
