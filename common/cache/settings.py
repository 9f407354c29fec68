"""Settings of a quote cache, shared by every service that keeps one."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import non_negative, positive, redis_url, setting
from common.feedsign import FeedSettings, FeedTrust, Plausibility, feed_keys
from common.feedsign.trust import DEFAULT_CLOCK_SKEW_S, DEFAULT_SEQ_JUMP


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings(FeedSettings):
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        help="Redis of this service's quote cache (a password goes in the URL)",
        check=redis_url,
        secret=True,
    )
    redis_prefix: str = setting("mf:", help="prefix of every Redis key the cache writes")
    fetch_max_wait_ms: int = setting(
        5,
        help="longest a fetch waits for data: lower is fresher, higher is cheaper",
        check=positive,
    )
    snapshot_timeout: float = setting(
        3.0,
        help="seconds to wait for a snapshot before replaying partitions instead",
        check=positive,
    )
    stale_after: float = setting(
        5.0, help="a cached quote older than this many seconds is marked STALE", check=positive
    )
    commit_interval: float = setting(
        1.0,
        help="seconds between commits of applied offsets to Kafka (for lag tools)",
        check=non_negative,
    )
    max_clock_skew: float = setting(
        DEFAULT_CLOCK_SKEW_S,
        help="seconds a quote's ts_ns or epoch may be ahead of this clock; further ahead is "
        "implausible and dead-lettered",
        check=non_negative,
    )
    max_seq_jump: int = setting(
        DEFAULT_SEQ_JUMP,
        help="a quote whose seq is further than this past the cached one (same epoch) is "
        "dead-lettered, and the symbol re-read from a snapshot",
        check=positive,
    )

    def trust(self) -> FeedTrust:
        """What the cache accepts (raises ConfigError, one line, for a bad or missing key)."""
        keys = feed_keys(self)
        return FeedTrust(
            keys.verifier() if keys is not None else None,
            Plausibility(self.max_clock_skew, self.max_seq_jump),
        )
