"""The figures of one consumer-benchmark run, as plain dataclasses (results.json is ``asdict``).

Rates are per second. "Feed rate" is what arrives on the quote partitions a consumer reads
(records/s); the publisher's own rate counts quotes and trades. Latency percentiles are in ms
with the keys of common.metrics.Percentiles.as_dict; CPU is in cores (CPU seconds per second).
What each verdict means is in marketfeed.bench.consumers.verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketfeed.bench.consumers.verdicts import LagStats


@dataclass(slots=True)
class PublisherStep:
    achieved_rate: float  # acknowledged msg/s, quotes + trades
    quote_rate: float  # records/s onto the quote topic: the feed every consumer reads
    lateness_ms: dict[str, float] | None  # behind the intended send times; None unthrottled
    failed: int
    cpu: float | None


@dataclass(slots=True)
class CatchUp:
    pause_s: float
    backlog: int  # records waiting when it resumed
    caught_up: bool
    time_s: float | None
    rate: float | None  # records/s done while catching up
    multiple: float | None  # rate / the step's feed rate on its partitions
    feed_rate_during: float  # records/s published to its partitions while it caught up


@dataclass(slots=True)
class ConsumerStep:
    consumer: str
    measured: bool
    note: str = ""
    consumed_rate: float = 0.0  # records/s done, on its partitions
    feed_rate: float = 0.0  # records/s published to its partitions
    latency_ms: dict[str, float] = field(default_factory=dict)
    lag: LagStats | None = None
    received: int = 0
    decoded: int = 0
    applied: int = 0
    conflated: int = 0
    partitions: int = 0  # how many quote partitions it consumes
    # Records published to the partitions it reads / to the whole topic, over the window.
    read_share: float | None = None
    decoded_share: float | None = None  # records decoded / records received
    conflation: float | None = None  # conflated / decoded (the caching consumer only)
    cpu: float | None = None
    catch_up: CatchUp | None = None
    # The step's verdict (marketfeed.bench.consumers.verdicts.bounded); None: not measured.
    bounded: bool | None = None


@dataclass(slots=True)
class Timeline:
    """Every lag sample of a step (settling, measuring, pauses, catch-ups), for the plots."""

    t: list[float] = field(default_factory=list)  # seconds since the step began
    phase: list[str] = field(default_factory=list)
    offset_lag: dict[str, list[int | None]] = field(default_factory=dict)
    time_lag_ms: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass(slots=True)
class Step:
    label: str  # "10,000" or "max"
    target_rate: float | None  # None: unthrottled
    duration_s: float
    publisher: PublisherStep
    servers_cpu: dict[str, float | None]
    consumers: dict[str, ConsumerStep]
    timeline: Timeline


@dataclass(slots=True)
class LatencyPair:
    p50_us: float
    p99_us: float


@dataclass(slots=True)
class GetQuote:
    """``QuoteReader.get`` beside a raw GET of the same key on the same server, interleaved."""

    symbol: str
    samples: int
    reader: LatencyPair
    raw_get: LatencyPair
    redis_benchmark: LatencyPair | None
    note: str


@dataclass(slots=True)
class Results:
    config: dict[str, Any]
    environment: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    get_quote: GetQuote | None = None
    summary: dict[str, Any] = field(default_factory=dict)
