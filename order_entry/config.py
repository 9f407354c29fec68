"""Settings of order_entry: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import in_range, known_log_level, positive, redis_url, setting
from common.exposition import MetricsSettings
from common.groups import GroupSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEntryConfig(GroupSettings, MetricsSettings):
    tradable: tuple[str, ...] = setting((), help="tradable symbols, comma-separated")
    tradable_file: Path | None = setting(None, help="file of tradable symbols, one per line")
    log_level: str = setting("INFO", help="log level", check=known_log_level)
    max_qty: int = setting(100_000, help="largest quantity one order may have", check=positive)
    limit_band: float = setting(
        0.10,
        help="a limit price further than this fraction from the mid is rejected (fat finger)",
        check=in_range(0.0001, 10.0),
    )
    order_memory: float = setting(
        7 * 86400.0,
        help="seconds an order id is remembered, so that a duplicate is recognised",
        check=positive,
    )
    ledger_url: str | None = setting(
        None,
        help="Redis of the order ledger (default: --redis-url); every order_entry of one group "
        "must share it, so that a duplicate is recognised after a rebalance moves its partition",
        check=redis_url,
        secret=True,
    )
    ledger_prefix: str | None = setting(
        None, help="key prefix of the order ledger (default: --redis-prefix)"
    )
    orders_window: int = setting(
        512,
        help="commands answered and awaiting the broker's acknowledgement at once (pipelining)",
        check=positive,
    )
