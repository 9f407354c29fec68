"""Settings of the order flow: ``MARKETFEED_*`` environment variables, overridden by flags.

``marketfeed up`` builds this config itself (its ``--orders-rate`` and ``--accounts``, and
order_entry's limits, so that the bad orders are bad by the rules order_entry applies) and
launches the flow from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import in_range, known_log_level, positive, redis_url, setting
from common.errors import ConfigError
from common.exposition import MetricsSettings
from common.kafka import KafkaSettings

# Account names are acct-01 .. acct-NNN: past 999 they would stop sorting with the narrow ones.
MAX_ACCOUNTS = 999


def account_count(value: int) -> str | None:
    """Check of a number of simulated accounts (``up --accounts`` uses it too)."""
    return None if 0 < value <= MAX_ACCOUNTS else f"must be between 1 and {MAX_ACCOUNTS}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFlowConfig(KafkaSettings, MetricsSettings):
    orders_rate: float = setting(2.0, help="orders per second", check=positive)
    accounts: int = setting(
        10, help="number of simulated accounts, acct-01 .. acct-NN", check=account_count
    )
    tradable: tuple[str, ...] = setting(
        (), help="symbols to trade, comma-separated (order_entry's tradable set)"
    )
    tradable_file: Path | None = setting(None, help="file of symbols to trade, one per line")
    seed: int | None = setting(
        None, help="random seed; the same seed sends the same orders (default: random)"
    )
    limit_ratio: float = setting(
        0.2,
        help="share of orders with a limit: half marketable (filled), half passive (cancelled)",
        check=in_range(0.0, 1.0),
    )
    bad_ratio: float = setting(
        0.05,
        help="share of deliberately bad orders (qty over --max-qty, a symbol that is not "
        "tradable, a limit outside --limit-band), which order_entry rejects",
        check=in_range(0.0, 1.0),
    )
    max_qty: int = setting(
        100_000, help="order_entry's largest quantity (a bad order asks for more)", check=positive
    )
    limit_band: float = setting(
        0.10,
        help="order_entry's limit band, a fraction of the mid (a bad limit lies outside it)",
        check=in_range(0.0001, 10.0),
    )
    redis_url: str | None = setting(
        None,
        help="order_entry's quote cache, to price limit orders (default: none, every order "
        "goes out at market)",
        check=redis_url,
        secret=True,
    )
    redis_prefix: str = setting("mf:", help="key prefix of that cache")
    log_level: str = setting("INFO", help="log level", check=known_log_level)

    def __post_init__(self) -> None:
        if self.limit_ratio + self.bad_ratio > 1.0:
            raise ConfigError(
                f"--limit-ratio={self.limit_ratio} and --bad-ratio={self.bad_ratio}: "
                "must add up to at most 1"
            )
