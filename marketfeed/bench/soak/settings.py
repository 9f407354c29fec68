"""Settings of ``marketfeed bench soak`` beyond every benchmark's.

Light on purpose, like the base: the command line imports this to build its parser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

from common.config import non_negative, positive, setting
from common.errors import ConfigError
from marketfeed.bench.core.settings import BenchSettings, symbol_count

# The targets of issue 10, on this 2-core machine at 10k msg/s, 500 symbols, 16 partitions.
TARGET_FLAT = 1.2  # last segment / first segment, for e2e p50 and p99
TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0
TARGET_BROKER_RSS_MB = 300.0
TARGET_TIME_LAG_S = 1.0  # `marketfeed lag` keeps reading sub-second time lag


def _segment(value: Any) -> str | None:
    return None if 0 < value <= 0.5 else "must be in (0, 0.5]: a share of the measured run"


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakConfig(BenchSettings):
    # Redeclared: a soak is one long run, not steps.
    duration: float = setting(
        3600.0, help="seconds the soak is measured, after --warmup", check=positive
    )
    warmup: float = setting(
        30.0,
        help="seconds the stack runs before it is measured (caches fill, groups join); sampled "
        "and plotted, not judged",
        check=non_negative,
    )
    symbols: int = setting(500, help="number of simulated symbols", check=symbol_count)
    fetch_max_wait_ms: int = setting(
        0,
        help="fetch_max_wait_ms of the services' caches and of the latency probe "
        "(0: the services' own default)",
        check=non_negative,
    )
    rate: float = setting(
        10_000.0, help="the publisher's rate, msg/s (quotes + trades)", check=positive
    )
    sample_every: float = setting(
        5.0,
        help="seconds between samples: each is a latency window and a reading of lag, memory "
        "and CPU",
        check=positive,
    )
    segment: float = setting(
        0.1,
        help="share of the measured run compared for flatness: its last part vs its first",
        check=_segment,
    )
    tradable: int = setting(
        50,
        help="order_entry trades the first N symbols; the latency probe follows the same ones",
        check=positive,
    )
    watchlist: int = setting(10, help="portfolio watches the first N symbols", check=non_negative)
    orders_rate: float = setting(
        2.0, help="simulated orders per second sent to order_entry", check=positive
    )
    accounts: int = setting(10, help="simulated accounts of the order flow", check=positive)
    checkpoint_every: float = setting(
        60.0,
        help="seconds between writes of what was measured so far to --out (results.json)",
        check=positive,
    )

    def smoke_preset(self) -> Self:
        # A run of seconds that exercises every figure (the test suite runs it).
        return replace(
            self,
            symbols=200,
            rate=1000.0,
            duration=5.0,
            warmup=3.0,
            sample_every=1.0,
            segment=0.5,
            tradable=20,
            watchlist=5,
            orders_rate=5.0,
            checkpoint_every=2.0,
        )

    def check(self) -> None:
        if self.tradable > self.symbols:
            raise ConfigError(
                f"--tradable={self.tradable}: must be at most --symbols ({self.symbols})"
            )
        if self.sample_every > self.duration:
            raise ConfigError(
                f"--sample-every={self.sample_every:g}: must be at most --duration "
                f"({self.duration:g}), or nothing is measured"
            )

    @property
    def total_s(self) -> float:
        """How long the stack runs: warm-up, then the measured part."""
        return self.warmup + self.duration
