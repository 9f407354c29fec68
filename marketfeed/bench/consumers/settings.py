"""Settings of ``marketfeed bench consumers``: flags and ``MARKETFEED_*`` variables, checked.

Every bad value is refused before anything starts, with one line naming the flag (exit 2),
including an output directory that could not be written at the end of a long run.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common.config import (
    bootstrap_servers,
    known_log_level,
    non_negative,
    positive,
    redis_url,
    setting,
)
from common.errors import ConfigError
from feed_publisher.universe import MAX_SYMBOLS
from marketfeed.bench.consumers.params import CONSUMERS
from marketfeed.bench.consumers.step import Plan

# What --smoke sets: a run of seconds that exercises every figure (CI runs it).
SMOKE = {
    "symbols": 200,
    "rates": ("500", "2000"),
    "duration": 2.0,
    "pause": 1.0,
    "warmup": 1.0,
    "get_samples": 200,
}


def parse_rates(values: Sequence[str]) -> tuple[float | None, ...]:
    """``("1000", "max")`` -> ``(1000.0, None)``; None is unthrottled."""
    rates: list[float | None] = []
    for value in values:
        text = value.strip().lower()
        if text == "max":
            rates.append(None)
            continue
        try:
            rate = float(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"--rates: {value!r} is not a number or max") from None
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"--rates: {value!r}: every rate must be > 0 (or max)")
        rates.append(rate)
    return tuple(rates)


def _rates(values: Any) -> str | None:
    if not values:
        return "must list at least one rate"
    try:
        parse_rates(values)
    except ConfigError as exc:
        return str(exc).removeprefix("--rates: ")
    return None


def _pause(value: Any) -> str | None:
    # A pause freezes the process: past the Kafka client's request timeout (30 s here is
    # safely under aiokafka's 40 s), requests in flight would fail on resume.
    return None if 0 <= value <= 30 else "must be between 0 and 30 seconds"


def _fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]: a share of the symbols"


def _symbol_count(value: Any) -> str | None:
    return None if 0 < value <= MAX_SYMBOLS else f"must be between 1 and {MAX_SYMBOLS}"


def _known_consumers(values: Any) -> str | None:
    unknown = sorted(set(values) - set(CONSUMERS))
    if unknown or not values:
        return f"must name some of {', '.join(CONSUMERS)}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumersBenchConfig:
    symbols: int = setting(1000, help="number of simulated symbols", check=_symbol_count)
    partitions: int = setting(16, help="partitions of the quote topic", check=positive)
    interest: float = setting(
        0.1, help="the caching consumer follows the first F x symbols, 0 < F <= 1", check=_fraction
    )
    rates: tuple[str, ...] = setting(
        ("1000", "10000", "50000", "max"),
        help="publisher rates to step through, msg/s (quotes + trades); max = unthrottled",
        check=_rates,
    )
    duration: float = setting(10.0, help="seconds each rate step is measured", check=positive)
    pause: float = setting(
        10.0,
        help="seconds the consumers are paused after a step while the feed goes on (0: none)",
        check=_pause,
    )
    warmup: float = setting(
        3.0,
        help="seconds each step runs (processes started, feed at its rate) before it is measured",
        check=non_negative,
    )
    consumers: tuple[str, ...] = setting(
        CONSUMERS, help="consumers under test: caching, naive, bare", check=_known_consumers
    )
    fetch_max_wait_ms: int = setting(
        5,
        help="fetch_max_wait_ms of every consumer under test (CacheSettings.fetch_max_wait_ms)",
        check=positive,
    )
    linger_ms: int = setting(2, help="the publisher's producer linger", check=non_negative)
    lag_bound: float = setting(
        1.0,
        help="lag is bounded if at the end of a step it is under this many seconds of feed and "
        "grew by under half of that during the step",
        check=positive,
    )
    get_samples: int = setting(
        2000, help="get-quote calls timed, each beside a raw GET", check=positive
    )
    out: Path | None = setting(
        None, help="write results.json, report.md and PNG plots (and logs) to this directory"
    )
    bootstrap: str | None = setting(
        None,
        help="use this broker instead of an embedded one",
        check=bootstrap_servers,
        metavar="HOST:PORT",
    )
    redis_url: str | None = setting(
        None,
        help="use this Redis (a key prefix per consumer, removed after) instead of embedded ones",
        check=redis_url,
    )
    seed: int = setting(1, help="random seed of the simulated market")
    connect_timeout: float = setting(
        10.0, help="seconds to keep retrying an unreachable broker", check=positive
    )
    smoke: bool = setting(
        False,
        help="a run of seconds for CI: 200 symbols, rates 500,2000, 2 s steps, 1 s pauses "
        "(these override the flags)",
    )
    log_level: str = setting("WARNING", help="log level", check=known_log_level)

    def effective(self) -> ConsumersBenchConfig:
        return replace(self, **SMOKE) if self.smoke else self  # type: ignore[arg-type]

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


def prepare_out(path: Path) -> None:
    """Fail now, with one line, if the results could not be written at the end."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there: {exc.strerror or exc}") from None
