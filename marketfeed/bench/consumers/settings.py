"""Settings of ``marketfeed bench consumers`` beyond every benchmark's, and its step plan.

Light on purpose, like the base: the command line imports this to build its parser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

from common.config import non_negative, positive, setting
from marketfeed.bench.core.settings import BenchSettings, parse_rates, rate_list

CACHING, CACHING_UNSIGNED, NAIVE, BARE = "caching", "caching-unsigned", "naive", "bare"
# The caching consumer verifying no signature, on the same signed feed: beside "caching", what
# verifying costs it. Not run by default: on two cores every extra process takes CPU from the
# others, and the default run is the one the issue-5 targets are measured with.
CONSUMERS = (CACHING, CACHING_UNSIGNED, NAIVE, BARE)
DEFAULT_CONSUMERS = (CACHING, NAIVE, BARE)
CACHING_KINDS = (CACHING, CACHING_UNSIGNED)  # the project's CachingConsumer
REDIS_WRITERS = (*CACHING_KINDS, NAIVE)  # each gets a Redis server of its own


def _pause(value: Any) -> str | None:
    # A pause freezes the process: past the Kafka client's request timeout (30 s here is
    # safely under aiokafka's 40 s), requests in flight would fail on resume.
    return None if 0 <= value <= 30 else "must be between 0 and 30 seconds"


def _fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]: a share of the symbols"


def _known_consumers(values: Any) -> str | None:
    unknown = sorted(set(values) - set(CONSUMERS))
    if unknown or not values:
        return f"must name some of {', '.join(CONSUMERS)}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a rate step does, and when; see marketfeed.bench.consumers.step."""

    rates: tuple[float | None, ...]  # None: unthrottled
    duration: float
    pause: float
    warmup: float
    lag_bound: float
    sample_every: float = 0.2
    # Catch-up is timed by sampling: finer gives a finer time, but every sample is a fetch
    # of each partition's tail, which costs the broker too.
    catch_up_sample_every: float = 0.1

    @property
    def catch_up_timeout(self) -> float:
        return max(5.0, 3 * self.pause)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumersBenchConfig(BenchSettings):
    interest: float = setting(
        0.1, help="the caching consumer follows the first F x symbols, 0 < F <= 1", check=_fraction
    )
    rates: tuple[str, ...] = setting(
        ("1000", "10000", "50000", "max"),
        help="publisher rates to step through, msg/s (quotes + trades); max = unthrottled",
        check=rate_list,
    )
    pause: float = setting(
        10.0,
        help="seconds the consumers are paused after a step while the feed goes on (0: none)",
        check=_pause,
    )
    consumers: tuple[str, ...] = setting(
        DEFAULT_CONSUMERS,
        help="consumers under test: caching, naive, bare, and caching-unsigned (the caching "
        "consumer verifying no signature on the same signed feed: what verifying costs)",
        check=_known_consumers,
    )
    cycle_ms: float = setting(
        10.0,
        help="the publisher sends at most once per this many ms (its --cycle-ms: record batches "
        "per partition)",
        check=non_negative,
    )
    lag_bound: float = setting(
        1.0,
        help="seconds of feed: a consumer kept up if its lag ends a step within this and grew "
        "by under half of it, or fell by half of it (catching up); see the report",
        check=positive,
    )
    get_samples: int = setting(
        2000, help="get-quote calls timed, each beside a raw GET", check=positive
    )

    def smoke_preset(self) -> Self:
        # A run of seconds that exercises every figure (CI runs it).
        return replace(
            self,
            symbols=200,
            rates=("500", "2000"),
            duration=2.0,
            pause=1.0,
            warmup=1.0,
            get_samples=200,
        )

    @property
    def interest_count(self) -> int:
        return max(1, round(self.interest * self.symbols))

    def plan(self) -> Plan:
        return Plan(
            rates=parse_rates(self.rates),
            duration=self.duration,
            pause=self.pause,
            warmup=self.warmup,
            lag_bound=self.lag_bound,
        )
