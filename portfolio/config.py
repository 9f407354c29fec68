"""Settings of portfolio: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import known_log_level, non_negative, setting
from common.exposition import MetricsSettings
from common.groups import GroupSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioConfig(GroupSettings, MetricsSettings):
    watchlist: tuple[str, ...] = setting((), help="watchlist symbols, comma-separated")
    watchlist_file: Path | None = setting(None, help="file of watchlist symbols, one per line")
    log_level: str = setting("INFO", help="log level", check=known_log_level)
    evict_after: float = setting(
        30.0,
        help="seconds a symbol that no account holds any more (and not on the watchlist) stays "
        "in the quote cache before it is evicted",
        check=non_negative,
    )
