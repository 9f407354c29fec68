"""The figures of one soak, as plain dataclasses (results.json is ``asdict``).

One Sample every ``--sample-every`` seconds: the latency window that ended then, and a reading
of lag, memory, CPU, generations and order outcomes at that moment. Times are seconds since the
stack was up (the warm-up began); memory in MB (resident); CPU in cores (CPU seconds per second
over the window); latency in ms with the keys of common.metrics.Percentiles.as_dict.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from marketfeed.bench.soak.generations import GenerationCounts


class Phase(enum.StrEnum):
    WARMUP = "warmup"  # sampled and plotted, not judged
    SOAK = "soak"  # the measured run


WARMUP, SOAK = Phase.WARMUP, Phase.SOAK


@dataclass(frozen=True, slots=True)
class ServiceLag:
    """One service's lag at one sample, as ``marketfeed lag`` judges it (marketfeed.lag)."""

    state: str  # live | idle | stalled | down | unavailable (the sample could not be taken)
    reason: str
    offset_lag: int | None
    time_lag_s: float | None
    in_rate: float | None  # records/s arriving on its partitions
    apply_rate: float | None  # records/s it applied


@dataclass(slots=True)
class Sample:
    t: float  # end of the window
    phase: Phase  # SOAK: its window lies wholly after the warm-up
    window_s: float
    latency_ms: dict[str, float]  # of the published quotes of the probe's symbols served
    applied: int  # quotes the probe applied in the window (each serves one or more)
    lag: dict[str, ServiceLag]  # by service, the probe included
    rss_mb: dict[str, float | None]  # by process
    cpu: dict[str, float | None]  # by process, cores over the window
    generations: GenerationCounts | None  # None: the quote topic is not rolled (n/a)
    orders: dict[str, int]  # terminal events on orders.events so far, by kind and reason

    @property
    def start(self) -> float:
        """When its window began: the previous sample's ``t`` (both to the millisecond)."""
        return round(self.t - self.window_s, 3)


@dataclass(slots=True)
class SoakResults:
    config: dict[str, Any]
    environment: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    # How it ended: "completed", "interrupted (Ctrl-C)", or which process died.
    ended: str = "running"
    elapsed_s: float = 0.0
    # Latency percentiles of the segments the verdicts compare (merged windows).
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    """What a soak measured so far: the results, and each sample's latency window encoded
    (common.metrics.LatencyHistogram.encode; merged later for any span of samples)."""

    results: SoakResults
    histograms: list[bytes] = field(default_factory=list)
