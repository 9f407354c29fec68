"""Settings of order_entry: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.cache import CacheSettings
from common.config import known_log_level, setting


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEntryConfig(CacheSettings):
    tradable: tuple[str, ...] = setting((), help="tradable symbols, comma-separated")
    tradable_file: Path | None = setting(None, help="file of tradable symbols, one per line")
    log_level: str = setting("INFO", help="log level", check=known_log_level)
