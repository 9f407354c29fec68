"""What one look at a cache and the broker finds: the input of the lag rules (no I/O).

``marketfeed.lag.monitor`` fills these from Redis and the broker; ``marketfeed.lag.rules``
judges them; the unit tests build them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def offset_lag(high_watermark: int, applied_offset: int | None) -> int:
    """Records on the broker the cache has not applied; never negative."""
    position = 0 if applied_offset is None else applied_offset + 1
    return max(0, high_watermark - position)


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


def worst_fresh(ages: Mapping[str, float | None], count: int) -> tuple[SymbolAge, ...]:
    """The ``count`` symbols with the oldest cached quote; uncached ones first."""
    ranked = sorted(
        ages.items(), key=lambda item: (item[1] is not None, -(item[1] or 0.0), item[0])
    )
    return tuple(SymbolAge(symbol, age) for symbol, age in ranked[: max(0, count)])


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

    @property
    def heartbeat_age_s(self) -> float | None:
        if self.heartbeat_ns is None:
            return None
        return max(0, self.now_ns - self.heartbeat_ns) / 1_000_000_000
