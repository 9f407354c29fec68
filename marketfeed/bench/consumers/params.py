"""What the consumer benchmark hands each of its worker processes: one JSON-able record.

The benchmark builds every worker's configuration itself, keyword by keyword, so that no
``MARKETFEED_*`` variable in the environment can quietly change what a worker measures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# The publisher's pacer needs a finite rate; this one is far above anything reachable here, so
# the pacer always has a full batch due: the publisher is unthrottled ("max").
UNTHROTTLED = 1e9

ROLES = ("publisher", "caching", "naive", "bare")
CONSUMERS = ("caching", "naive", "bare")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerParams:
    bootstrap: str
    topic_prefix: str
    partitions: int
    symbols: int
    seed: int
    log_level: str = "WARNING"
    connect_timeout: float = 10.0
    # The publisher's first rate (None: unthrottled) and its producer linger.
    rate: float | None = None
    linger_ms: int = 2
    # Consumers: fetch wait, and the Redis a consumer writes to, under its own key prefix.
    fetch_max_wait_ms: int = 5
    redis_url: str = ""
    redis_prefix: str = ""
    # The caching consumer follows the first ``interest`` symbols of the universe.
    interest: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerParams:
        return cls(**json.loads(text))
