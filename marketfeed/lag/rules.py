"""The rules of ``marketfeed lag``: samples of a cache and the broker in, lag and state out.

No I/O: ``marketfeed.lag.monitor`` takes the samples (``marketfeed.lag.sample``), this module
judges them, so every rule below is unit-tested without servers. ``LagTracker.update`` does it
in two steps: one pass over the partitions (:class:`PartitionPass`), then the service's verdict
from that pass and the heartbeat (:func:`service_state`).

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
just before one look is not taken for a stall): whatever the other partitions do. A consumer
that moves on some partitions while others wait is behind on those, by as long as they wait
(under load the embedded broker answered a fetch with a few partitions only, and left the rest
waiting: a cache 19 s behind on 13 of its 16 partitions was once called live because three
moved).

Per service, in this order: **down** (no cache meta at all: the consumer never started; or no
heartbeat for ``down_after_s``), **stalled** (heartbeat older than ``stale_after_s``), else its
worst partition's state (``verdict.worst_state``: stalled, then live, then idle): stalled when
any partition is, and the reason names every stalled partition (``verdict.stalled_reason``);
**idle** when every partition is caught up and no record arrived since the previous sample (the
feed is quiet), or none is assigned; else **live**.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from marketfeed.lag.sample import CacheSample, PartitionSample, SymbolAge
from marketfeed.lag.verdict import LagState, Stall, Thresholds, stalled_reason, worst_state

# Re-exported: what a sample is judged against, and what a verdict is, are read from here too.
__all__ = [
    "LagState",
    "LagTracker",
    "PartitionLag",
    "PartitionPass",
    "ServiceLag",
    "Stall",
    "Thresholds",
    "rate",
    "service_state",
    "time_lag_s",
]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionLag:
    partition: int
    high_watermark: int
    applied_offset: int | None
    offset_lag: int
    time_lag_s: float | None  # None: behind, but no publish time known yet
    in_rate: float | None  # records/s arriving; None on the first sample
    apply_rate: float | None  # records/s the cache moved past
    state: LagState  # live | idle | stalled

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "high_watermark": self.high_watermark,
            "applied_offset": self.applied_offset,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
            "in_rate": _round(self.in_rate, 1),
            "apply_rate": _round(self.apply_rate, 1),
            "state": str(self.state),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceLag:
    service: str
    state: LagState
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
            "state": str(self.state),
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


@dataclass(slots=True)
class PartitionPass:
    """What one pass over a sample's partitions found: the rows, and what the verdict needs."""

    rows: list[PartitionLag] = field(default_factory=list)
    stalled: list[Stall] = field(default_factory=list)
    quiet: bool = True  # no record arrived on any partition since the previous sample

    @property
    def offset_lag(self) -> int:
        return sum(r.offset_lag for r in self.rows)


# -- the verdict -------------------------------------------------------------------------------


def service_state(
    heartbeat_age_s: float | None, found: PartitionPass, limits: Thresholds
) -> tuple[LagState, str]:
    """The service's state and why, from its heartbeat and its partitions (see the top)."""
    if heartbeat_age_s is None:
        return LagState.DOWN, "no heartbeat yet"
    if heartbeat_age_s > limits.down_after_s:
        return LagState.DOWN, f"no heartbeat for {heartbeat_age_s:.1f}s"
    if heartbeat_age_s > limits.stale_after_s:
        return LagState.STALLED, f"heartbeat {heartbeat_age_s:.1f}s old"
    if not found.rows:
        return LagState.IDLE, "no partitions assigned (no symbols of interest)"
    state = worst_state(row.state for row in found.rows)
    if state is LagState.STALLED:
        return state, stalled_reason(found.stalled, len(found.rows))
    if state is LagState.IDLE:
        return state, "caught up, feed quiet"
    lag = found.offset_lag
    return state, "caught up" if lag == 0 else f"{lag:,} records behind, applying"


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

    def keep_only(self, partitions: Iterable[int]) -> None:
        """Forget partitions no longer assigned (all of them for an empty ``partitions``)."""
        kept = set(partitions)
        for memo in (self.caught_up_ns, self.stuck):
            for gone in set(memo) - kept:
                del memo[gone]


@dataclass(frozen=True, slots=True)
class _Interval:
    """Seconds since the previous sample, by each clock: watermarks at the start of a sample,
    the cache at its end."""

    arrivals: float
    applied: float

    @classmethod
    def between(cls, previous: CacheSample | None, sample: CacheSample) -> _Interval:
        if previous is None:
            return cls(0.0, 0.0)
        return cls(
            (sample.began_ns - previous.began_ns) / _NS, (sample.now_ns - previous.now_ns) / _NS
        )


class LagTracker:
    """Judges each new sample of a service against what it saw before (no I/O)."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self._history: dict[str, _History] = {}

    def update(self, sample: CacheSample) -> ServiceLag:
        history = self._history.setdefault(sample.service, _History())
        previous, history.previous = history.previous, sample
        if not sample.has_meta:
            history.keep_only(())
            return ServiceLag(
                service=sample.service,
                state=LagState.DOWN,
                reason="consumer never started (its cache has no meta)",
                heartbeat_age_s=None,
            )
        found = self._partitions(history, sample, previous)
        state, reason = service_state(sample.heartbeat_age_s, found, self.thresholds)
        return ServiceLag(
            service=sample.service,
            state=state,
            reason=reason,
            heartbeat_age_s=sample.heartbeat_age_s,
            interest_count=sample.interest_count,
            partitions=tuple(found.rows),
            worst_fresh=sample.worst_fresh,
        )

    def _partitions(
        self, history: _History, sample: CacheSample, previous: CacheSample | None
    ) -> PartitionPass:
        """Judge each partition of ``sample``; note what the service's verdict needs."""
        found = PartitionPass(quiet=previous is not None)
        interval = _Interval.between(previous, sample)
        for number, part in sorted(sample.partitions.items()):
            before = previous.partitions.get(number) if previous else None
            arrived = before is None or part.high_watermark != before.high_watermark
            found.quiet = found.quiet and not arrived
            row, stall = self._partition(history, sample, part, before, arrived, interval)
            found.rows.append(row)
            if stall is not None:
                found.stalled.append(stall)
        history.keep_only(sample.partitions)
        return found

    def _partition(
        self,
        history: _History,
        sample: CacheSample,
        part: PartitionSample,
        before: PartitionSample | None,
        arrived: bool,
        interval: _Interval,
    ) -> tuple[PartitionLag, Stall | None]:
        """One partition's lag and state; and how it is stalled, if it is."""
        number, lag = part.partition, part.offset_lag
        timed = time_lag_s(
            lag, part.position_ts_ns, sample.now_ns, history.caught_up_ns.get(number)
        )
        stuck = self._note_stuck(history, part, before, sample.began_ns)
        stall = None
        if stuck is not None:
            state = LagState.STALLED
            stall = Stall(
                partition=number,
                applied_offset=part.applied_offset,
                stuck_s=(sample.now_ns - stuck.since_ns) / _NS,
                first_lag=stuck.first_lag,
                lag=lag,
            )
        elif lag == 0 and not arrived:
            state = LagState.IDLE
        else:
            state = LagState.LIVE
        if lag == 0:
            history.caught_up_ns[number] = sample.began_ns
        row = PartitionLag(
            partition=number,
            high_watermark=part.high_watermark,
            applied_offset=part.applied_offset,
            offset_lag=lag,
            time_lag_s=timed,
            in_rate=rate(
                before.high_watermark if before else None, part.high_watermark, interval.arrivals
            ),
            apply_rate=rate(_position(before), _position(part), interval.applied),
            state=state,
        )
        return row, stall

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


def _position(part: PartitionSample | None) -> int | None:
    if part is None or part.applied_offset is None:
        return None
    return part.next_offset


def _sum_rates(rates: Iterable[float | None]) -> float | None:
    known = [r for r in rates if r is not None]
    return sum(known) if known else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
