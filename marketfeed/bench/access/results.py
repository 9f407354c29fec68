"""What ``bench access`` measured: plain dataclasses, written as they are to results.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LIBRARY, KAFKA, HTTP = "library", "kafka", "http"
PATHS = {
    LIBRARY: "library call on the cache (QuoteReader.get)",
    KAFKA: "request/response over Kafka (the publisher's snapshot responder)",
    HTTP: "HTTP from the API (GET /v1/quotes)",
}


@dataclass(slots=True)
class PathResult:
    path: str
    reads: int
    seconds: float
    latency: dict[str, float]  # Percentiles.as_dict(): count, p50_ms ... max_ms
    failed: int = 0

    @property
    def per_second(self) -> float:
        return self.reads / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class CacheCost:
    """What the caching consumer cost while the reads ran: the price of a fresh cache."""

    seconds: float
    feed_msgs_per_s: float  # quotes + trades the publisher added meanwhile
    cores: float | None  # CPU seconds per second of the caching consumer
    rss_mb: float | None
    redis_cores: float | None  # its Redis server (embedded runs only)


@dataclass(slots=True)
class OrderResult:
    path: str  # "kafka" (in-process, no HTTP) or "http" (POST /v1/orders)
    orders: int
    latency: dict[str, float]
    outcomes: dict[str, int]


@dataclass(slots=True)
class FanoutStep:
    clients: int
    seconds: float
    events: int  # events all clients received in the window
    per_client_rate: float  # events/s each received, on average
    api_cores: float | None
    bench_cores: float | None  # this process, which reads every stream


@dataclass(slots=True)
class AccessResults:
    config: dict[str, Any]
    environment: dict[str, Any]
    paths: list[PathResult] = field(default_factory=list)
    cache: CacheCost | None = None
    orders: list[OrderResult] = field(default_factory=list)
    fanout: list[FanoutStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def path(self, name: str) -> PathResult | None:
        return next((p for p in self.paths if p.path == name), None)
