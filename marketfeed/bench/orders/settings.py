"""Settings of ``marketfeed bench orders`` beyond every benchmark's.

Light on purpose, like the base: the command line imports this to build its parser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from common.config import positive, setting
from common.errors import ConfigError
from marketfeed.bench.core.settings import BenchSettings, parse_rates, rate_list


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersBenchConfig(BenchSettings):
    tradable: int = setting(
        100,
        help="order_entry trades the first N symbols; orders cycle through them",
        check=positive,
    )
    quote_rate: float = setting(
        10_000.0, help="the publisher's rate, msg/s (quotes + trades), all run long", check=positive
    )
    order_rates: tuple[str, ...] = setting(
        ("100", "500", "1000", "max"),
        help="order rates to step through, orders/s; max = closed loop with --window orders "
        "outstanding",
        check=rate_list,
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

    def smoke_preset(self) -> Self:
        # A run of seconds that produces every figure (the test suite runs it). Its steps share
        # the join phase's topics and processes: starting fresh ones per step would cost a
        # group join each. Rates stay far below what order_entry answers, so that no step
        # leaves a backlog for the next.
        return replace(
            self,
            symbols=200,
            tradable=20,
            quote_rate=1000.0,
            order_rates=("20", "max"),
            duration=0.8,
            warmup=0.2,
            window=8,
            answer_timeout=3.0,
            rebalance_timeout=1.0,
            fresh_topics=False,
        )

    def check(self) -> None:
        if self.tradable > self.symbols:
            raise ConfigError(
                f"--tradable={self.tradable}: must be at most --symbols ({self.symbols})"
            )

    @property
    def rates(self) -> tuple[float | None, ...]:
        return parse_rates(self.order_rates)
