"""A running stack for the API's tests: publisher, order_entry and the API, on fresh topics.

The publisher and order_entry run in the test's own process (as in the order tests), the API
too (uvicorn on a free loopback port), and every test talks to it over real HTTP (httpx).
portfolio's side is a prefix of its own in the second Redis, filled by hand (interest, one
cached quote, positions through portfolio's own PositionStore), so that every status of a
quote lookup is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from common.cache.keys import CacheKeys
from common.cache.reader import QuoteReader
from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack
from feed_publisher.universe import universe
from http_api.config import ApiConfig
from http_api.server import ApiServer
from order_entry.config import OrderEntryConfig
from order_entry.service import OrderEntryService
from tests.feedkey import FEED_KEY
from tests.helpers import eventually, running_publisher

SYMBOLS = 40
TRADABLE = tuple(universe(8))
# The API's token in these tests (as `up` makes one per run): every client carries it.
API_TOKEN = "t0ken-" + "a1b2c3d4" * 4
# portfolio's hand-filled cache: one cached symbol, one the publisher has, one nobody has.
PF_CACHED, PF_COLD, PF_NOWHERE = "AAAA", "AAAB", "QQQQ"


@dataclass
class ApiEnv:
    kafka: KafkaSettings
    api: ApiServer
    http: httpx.AsyncClient
    redis_url: str  # order_entry's Redis
    portfolio_url: str
    oe_prefix: str
    pf_prefix: str


def api_config(kafka: KafkaSettings, **overrides: Any) -> ApiConfig:
    values: dict[str, Any] = {
        "bootstrap": kafka.bootstrap,
        "topic_prefix": kafka.topic_prefix,
        "partitions": kafka.partitions,
        "port": 0,
        "order_timeout": 20.0,
        "lag_interval": 0.5,
        "stream_max_rate": 50.0,
        "log_level": "WARNING",
        "api_token": API_TOKEN,
        **overrides,
    }
    return ApiConfig(**values)


@contextlib.asynccontextmanager
async def running_api(config: ApiConfig) -> AsyncIterator[tuple[ApiServer, httpx.AsyncClient]]:
    # As a deployment gives it the feed key, to verify the snapshots it fetches.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MARKETFEED_FEED_KEY", FEED_KEY)
        server = ApiServer(config, config.resolve())
    async with (
        server as api,
        httpx.AsyncClient(
            base_url=api.url.rstrip("/"),
            timeout=30,
            headers={"Authorization": f"Bearer {config.api_token}"} if config.api_token else {},
        ) as http,
    ):
        yield api, http


@contextlib.asynccontextmanager
async def api_env(stack: EmbeddedStack) -> AsyncIterator[ApiEnv]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka = KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=prefix, partitions=4)
    oe_url, pf_url = stack.redis_url("order_entry"), stack.redis_url("portfolio")
    oe_prefix, pf_prefix = f"{prefix}oe:", f"{prefix}pf:"
    order_entry = OrderEntryConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=prefix,
        partitions=4,
        redis_url=oe_url,
        redis_prefix=oe_prefix,
        stale_after=300.0,
        session_timeout=2.0,  # a join waits about half of it on the embedded broker
    )
    config = api_config(
        kafka,
        order_entry_redis_url=oe_url,
        order_entry_redis_prefix=oe_prefix,
        portfolio_redis_url=pf_url,
        portfolio_redis_prefix=pf_prefix,
    )
    async with contextlib.AsyncExitStack() as stack_:
        await stack_.enter_async_context(running_publisher(kafka, symbols=SYMBOLS, rate=400))
        await stack_.enter_async_context(OrderEntryService(order_entry, tradable=TRADABLE))
        reader = QuoteReader.from_url(oe_url, prefix=oe_prefix)
        stack_.push_async_callback(reader.aclose)

        async def quoted() -> bool:
            return all(v is not None for v in (await reader.get_many(TRADABLE[:4])).values())

        await eventually(quoted, timeout=30, what="order_entry's cache filled")
        await fill_portfolio(pf_url, pf_prefix, await reader.client.get(reader.keys.quote("AAAA")))
        api, http = await stack_.enter_async_context(running_api(config))
        await asyncio.wait_for(api.backend.kafka.ready.wait(), 30)
        yield ApiEnv(kafka, api, http, oe_url, pf_url, oe_prefix, pf_prefix)


async def fill_portfolio(url: str, prefix: str, quote: bytes | str | None) -> None:
    """portfolio's cache by hand: interest in three symbols, only the first one cached."""
    assert quote is not None
    keys = CacheKeys(prefix)
    client = aioredis.Redis.from_url(url)
    try:
        await client.sadd(keys.interest, PF_CACHED, PF_COLD, PF_NOWHERE)
        await client.set(keys.quote(PF_CACHED), quote)
    finally:
        await client.aclose()
