"""Settings of a service whose stream processor is a member of a Kafka consumer group.

The group's name comes from ``--group``, the deployment's namespace: processes given the same
one join the same groups and share the work; a process started next to a ``marketfeed up``
without it stays out of up's groups (``up`` runs its services under a namespace of its own).
By default the namespace is ``<topic prefix>marketfeed``, so services on one topic prefix
still find each other.

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
    group: str | None = setting(
        None,
        help="namespace of the consumer groups this service joins: services given the same one "
        "share the work (default: <topic prefix>marketfeed)",
    )

    def group_id(self, service: str, role: str) -> str:
        """The id of ``service``'s group for ``role`` (orders, positions, quote-cache)."""
        return f"{self.group or self.topic_prefix + 'marketfeed'}.{service}.{role}"
