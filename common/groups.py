"""Settings of a service whose stream processor is a member of a Kafka consumer group.

The two timeouts decide how long a group takes to form and to recover from a lost member. On
the embedded broker (Tansu 0.6.0), measured here with aiokafka: a member's join waits about half
its session timeout (2 s -> 1.0 s, 3 s -> 2.0 s, 6 s -> 3.0 s, 10 s -> 5.0 s), whatever the
rebalance timeout; a killed member's partitions move on once its session has expired. The
defaults suit a loaded machine; tests shorten them.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.cache.settings import CacheSettings
from common.config import positive, setting


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSettings(CacheSettings):
    rebalance_timeout: float = setting(
        3.0, help="seconds a rebalance of the service's consumer group may take", check=positive
    )
    session_timeout: float = setting(
        6.0,
        help="seconds without a heartbeat before a member is dropped from the group; on the "
        "embedded broker a join waits about half of it",
        check=positive,
    )
