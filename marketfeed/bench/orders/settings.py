"""Settings of ``marketfeed bench orders``: flags and ``MARKETFEED_*`` variables, checked.

Every bad value is refused before anything starts, with one line naming the flag (exit 2).
"""

from __future__ import annotations

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
from marketfeed.bench.consumers.settings import parse_rates

# What --smoke sets: a run of seconds that produces every figure (the test suite runs it).
# Its steps share the join phase's topics and processes: starting fresh ones per step would
# cost a group join each. Rates stay far below what order_entry answers, so that no step
# leaves a backlog for the next.
SMOKE = {
    "symbols": 200,
    "tradable": 20,
    "quote_rate": 1000.0,
    "order_rates": ("20", "max"),
    "duration": 0.8,
    "warmup": 0.2,
    "window": 8,
    "answer_timeout": 3.0,
    "rebalance_timeout": 1.0,
    "fresh_topics": False,
}


def _rates(values: Any) -> str | None:
    if not values:
        return "must list at least one rate"
    try:
        parse_rates(values)
    except ConfigError as exc:
        return str(exc).removeprefix("--rates: ")
    return None


def _symbol_count(value: Any) -> str | None:
    return None if 0 < value <= MAX_SYMBOLS else f"must be between 1 and {MAX_SYMBOLS}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersBenchConfig:
    symbols: int = setting(1000, help="number of simulated symbols", check=_symbol_count)
    tradable: int = setting(
        100,
        help="order_entry trades the first N symbols; orders cycle through them",
        check=positive,
    )
    partitions: int = setting(16, help="partitions of the quote and order topics", check=positive)
    quote_rate: float = setting(
        10_000.0, help="the publisher's rate, msg/s (quotes + trades), all run long", check=positive
    )
    order_rates: tuple[str, ...] = setting(
        ("100", "500", "1000", "max"),
        help="order rates to step through, orders/s; max = closed loop with --window orders "
        "outstanding",
        check=_rates,
    )
    duration: float = setting(10.0, help="seconds each step is measured", check=positive)
    warmup: float = setting(
        3.0,
        help="seconds each step sends at its rate before it is measured (then reset)",
        check=non_negative,
    )
    window: int = setting(
        64, help="orders outstanding at once in the closed-loop (max) step", check=positive
    )
    answer_timeout: float = setting(
        5.0,
        help="seconds after a step's window that an order may still be answered; later is "
        "counted as no answer",
        check=positive,
    )
    rebalance_timeout: float = setting(
        3.0,
        help="order_entry's --rebalance-timeout (the faust group join knob)",
        check=positive,
    )
    fresh_topics: bool = setting(
        True,
        help="run each step on fresh topics with freshly started processes, so that no step "
        "inherits a backlog or a fuller broker (else all run on the join phase's)",
    )
    join_timeout: float = setting(
        60.0,
        help="seconds to wait for a process to join the group and answer an order",
        check=positive,
    )
    fetch_max_wait_ms: int = setting(
        5,
        help="fetch_max_wait_ms of the order driver's event consumer and of the echo baseline",
        check=positive,
    )
    out: Path | None = setting(None, help="write results.json (and logs) to this directory")
    bootstrap: str | None = setting(
        None,
        help="use this broker instead of an embedded one",
        check=bootstrap_servers,
        metavar="HOST:PORT",
    )
    redis_url: str | None = setting(
        None,
        help="use this Redis (keys under the run's prefix, removed after) instead of an "
        "embedded one",
        check=redis_url,
    )
    seed: int = setting(1, help="random seed of the simulated market")
    connect_timeout: float = setting(
        10.0, help="seconds to keep retrying an unreachable broker", check=positive
    )
    smoke: bool = setting(
        False,
        help="a run of seconds for CI: 200 symbols, quotes at 1,000 msg/s, rates 20,max, "
        "0.8 s steps on the join phase's topics (these override the flags)",
    )
    log_level: str = setting(
        "WARNING", help="log level (also of every child process)", check=known_log_level
    )

    def effective(self) -> OrdersBenchConfig:
        config = replace(self, **SMOKE) if self.smoke else self  # type: ignore[arg-type]
        if config.tradable > config.symbols:
            raise ConfigError(
                f"--tradable={config.tradable}: must be at most --symbols ({config.symbols})"
            )
        return config

    @property
    def rates(self) -> tuple[float | None, ...]:
        return parse_rates(self.order_rates)
