"""The servers and the feed a benchmark run measures on, and the machine it runs on.

A run uses the broker and Redis it was given, or starts embedded ones (one Redis per service
that writes one) for as long as it lasts, and the project's publisher as its feed. Everything
a run creates lives under a topic and key prefix of its own, so runs on a shared broker or
Redis never mix; the keys it wrote into a Redis that is not its own are removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiokafka
import redis
import redis.asyncio as aioredis
import redis.exceptions

from common.errors import BrokerUnavailableError, CacheUnavailableError
from common.feedsign import FeedSettings
from common.kafka import KafkaSettings
from common.redisconn import problem
from common.runtime import EmbeddedStack
from common.runtime.process import tcp_accepts
from feed_publisher.config import PublisherConfig
from marketfeed.bench.core.clients import FeedFields, feed_fields, kafka_fields
from marketfeed.bench.core.progress import Progress
from marketfeed.bench.core.settings import BenchSettings

# The publisher's pacer needs a finite rate; this one is far above anything reachable here, so
# the pacer always has a full batch due: the publisher is unthrottled ("max").
UNTHROTTLED = 1e9


def log_dir(stack: contextlib.AsyncExitStack, out: Path | None, name: str) -> Path:
    """Where a run's children log: ``out``/logs, else a temporary directory gone after the run."""
    if out is not None:
        path = out / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))


def run_prefix(name: str) -> str:
    """A topic prefix of its own for each run, so runs on a shared broker never mix."""
    return f"bench.{name}.{uuid.uuid4().hex[:8]}."


def feed_config(
    kafka: KafkaSettings,
    *,
    symbols: int,
    rate: float | None,
    seed: int,
    log_level: str = "INFO",
    cycle_ms: float | None = None,
    duration: float | None = None,
    signed: bool = True,
) -> PublisherConfig:
    """The publisher on ``kafka``'s topics at ``rate`` msg/s (None: unthrottled); its own
    default --cycle-ms unless ``cycle_ms`` is given."""
    config = PublisherConfig(
        **kafka_fields(kafka),
        **_feed(kafka, signed=signed),
        symbols=symbols,
        rate=UNTHROTTLED if rate is None else rate,
        seed=seed,
        duration=duration,
        log_level=log_level,
    )
    return config if cycle_ms is None else replace(config, cycle_ms=cycle_ms)


def _feed(kafka: KafkaSettings, *, signed: bool) -> FeedFields:
    """The feed key of ``kafka`` when it carries one (a worker's params: the run's key, handed
    down by its parent), else the run's own."""
    if isinstance(kafka, FeedSettings):
        return FeedFields(
            feed_key=kafka.feed_key, insecure_unsigned_feed=kafka.insecure_unsigned_feed
        )
    return feed_fields(signed=signed)


@dataclass(frozen=True, slots=True)
class Servers:
    bootstrap: str
    redis_urls: dict[str, str]  # of each service that writes to Redis
    # Process ids of the embedded servers (for their CPU time); none for given servers.
    broker_pid: int | None = None
    redis_pids: dict[str, int | None] = field(default_factory=dict)

    def pids(self, redis_label: Callable[[str], str]) -> dict[str, int | None]:
        """The embedded servers' pids by the names a report gives their CPU: "broker", and
        ``redis_label(service)`` for the Redis of each service."""
        pids: dict[str, int | None] = {}
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        pids.update({redis_label(s): pid for s, pid in self.redis_pids.items()})
        return pids


@contextlib.asynccontextmanager
async def bench_servers(
    *,
    bootstrap: str | None,
    redis_url: str | None = None,
    services: Sequence[str] = (),
    prefix: str,
    log_dir: Path | None = None,
    progress: Progress | None = None,
) -> AsyncIterator[Servers]:
    """The given broker and Redis, or embedded ones started for the run and stopped after it.

    A given Redis is checked at once (one line if it does not answer), and whatever was
    written into it under ``prefix`` is removed at the end.
    """
    if redis_url and not prefix:
        raise ValueError("a given Redis needs the run's key prefix: only its keys are removed")
    if bootstrap is not None:
        # Before anything is started for the run: a broker that is not there is one line now,
        # not after Redis servers, a publisher and a client's connect timeout.
        await check_broker(bootstrap)
    async with contextlib.AsyncExitStack() as stack:
        embedded: EmbeddedStack | None = None
        if bootstrap is None or (services and redis_url is None):
            if progress is not None:
                progress("starting the embedded servers")
            embedded = EmbeddedStack(
                services=() if redis_url else tuple(services),
                log_dir=log_dir,
                with_broker=bootstrap is None,
            )
            await stack.enter_async_context(embedded)
        if redis_url:
            await check_redis(redis_url)
            stack.push_async_callback(forget_keys, redis_url, [prefix])
        yield _servers(embedded, bootstrap, redis_url, services)


def _servers(
    embedded: EmbeddedStack | None,
    bootstrap: str | None,
    redis_url: str | None,
    services: Sequence[str],
) -> Servers:
    if embedded is None:
        return Servers(bootstrap or "", dict.fromkeys(services, redis_url or ""))
    return Servers(
        bootstrap=bootstrap or embedded.bootstrap,
        redis_urls={s: redis_url or embedded.redis_url(s) for s in services},
        broker_pid=embedded.broker.pid if embedded.broker is not None else None,
        redis_pids={s: server.pid for s, server in embedded.redis.items()},
    )


async def check_broker(bootstrap: str) -> None:
    """One line (BrokerUnavailableError) unless a server of ``bootstrap`` accepts connections."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and await tcp_accepts(host.strip("[]") or "localhost", int(port)):
            return
    raise BrokerUnavailableError(
        f"cannot reach Kafka at {bootstrap}: nothing accepts connections there"
    )


async def check_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise CacheUnavailableError(problem(url, exc)) from None
    finally:
        await client.aclose()


async def forget_keys(url: str, prefixes: Sequence[str]) -> None:
    """Remove what a run wrote into a Redis that is not its own."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for prefix in prefixes:
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                await client.delete(key)
    finally:
        await client.aclose()


def environment(config: BenchSettings, *, embedded_redis: str) -> dict[str, Any]:
    """The machine, the library versions and the servers a run measured on (results.json)."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiokafka": aiokafka.__version__,
        "redis_py": redis.__version__,
        "broker": config.bootstrap or "embedded Tansu (memory engine)",
        "redis": config.redis_url or embedded_redis,
    }
