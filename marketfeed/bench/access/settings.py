"""Settings of ``marketfeed bench access`` beyond every benchmark's.

Light on purpose, like the base: the command line imports this to build its parser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from common.config import non_negative, positive, setting
from common.errors import ConfigError
from marketfeed.bench.core.settings import BenchSettings


def client_counts(values: object) -> str | None:
    if not isinstance(values, tuple) or not values:
        return "must list at least one client count"
    return None if all(isinstance(v, int) and v > 0 for v in values) else "every count must be > 0"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessBenchConfig(BenchSettings):
    interest: int = setting(
        100,
        help="the caching consumer follows the first N symbols; reads pick among them",
        check=positive,
    )
    feed_rate: float = setting(
        5_000.0, help="the publisher's rate, msg/s (quotes + trades), all run long", check=positive
    )
    reads: int = setting(
        2_000, help="quote reads per access path, one after the other (one client)", check=positive
    )
    orders: int = setting(
        200,
        help="orders placed one after the other through POST /v1/orders, and as many directly "
        "over Kafka (0: no order phase)",
        check=non_negative,
    )
    clients: tuple[int, ...] = setting(
        (10, 50, 100, 200, 400),
        help="SSE client counts to step through (each step lasts --duration)",
        check=client_counts,
    )
    client_rate: float = setting(
        10.0, help="updates a second each SSE client asks for (max_rate)", check=positive
    )
    client_symbols: int = setting(
        10, help="symbols each SSE client streams (the first N of the interest)", check=positive
    )

    def smoke_preset(self) -> Self:
        # Seconds, every figure produced: few symbols, a slow feed, few reads and orders.
        return replace(
            self,
            symbols=200,
            interest=20,
            feed_rate=500.0,
            reads=30,
            orders=3,
            clients=(2, 4),
            duration=1.0,
            warmup=0.3,
        )

    def check(self) -> None:
        if self.interest > self.symbols:
            raise ConfigError(
                f"--interest={self.interest}: must be at most --symbols ({self.symbols})"
            )
        if self.client_symbols > self.interest:
            raise ConfigError(
                f"--client-symbols={self.client_symbols}: must be at most --interest "
                f"({self.interest})"
            )
