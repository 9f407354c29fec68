"""Settings of portfolio: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.cache import CacheSettings
from common.config import known_log_level, positive, setting


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioConfig(CacheSettings):
    watchlist: tuple[str, ...] = setting((), help="watchlist symbols, comma-separated")
    watchlist_file: Path | None = setting(None, help="file of watchlist symbols, one per line")
    log_level: str = setting("INFO", help="log level", check=known_log_level)
    rebalance_timeout: float = setting(
        3.0,
        help="seconds the positions group's rebalance may take; a first join waits about this long",
        check=positive,
    )
