"""Every part with a lifecycle: stop() is safe before start() and twice (no server needed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from common.cache import CacheSettings, CachingConsumer
from common.cache.snapshots import SnapshotClient
from common.kafka import KafkaSettings
from common.lifecycle import Lifecycle
from common.report import PeriodicReport
from common.runtime import ChildProcess, EmbeddedStack
from common.watermarks import WatermarkReader
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from feed_publisher.sink import BatchSink
from feed_publisher.snapshot import SnapshotResponder
from order_entry.config import OrderEntryConfig
from order_entry.eventlog import EventLog
from order_entry.inflight import Window
from order_entry.processor import OrderProcessor
from order_entry.service import OrderEntryService
from portfolio.config import PortfolioConfig
from portfolio.keeper import PositionKeeper
from portfolio.positions import PositionStore
from portfolio.service import PortfolioService
from tests.feedkey import FEED_KEY


async def _never_ready() -> bool:
    return False


async def _settle(_pending: Any) -> None:
    return None


PARTS: dict[str, Callable[[], Lifecycle]] = {
    "ChildProcess": lambda: ChildProcess(name="x", argv=["true"], ready=_never_ready),
    "EmbeddedStack": EmbeddedStack,
    "WatermarkReader": lambda: WatermarkReader("127.0.0.1:9"),
    "SnapshotClient": lambda: SnapshotClient(
        KafkaSettings(), None, service="x", trust=CacheSettings(feed_key=FEED_KEY).trust()
    ),
    "CachingConsumer": lambda: CachingConsumer(
        CacheSettings(feed_key=FEED_KEY), service="x", interest=["A"]
    ),
    "PeriodicReport": lambda: PeriodicReport(str, logger=logging.getLogger()),
    "SnapshotResponder": lambda: SnapshotResponder(KafkaSettings(), epoch=1, generation=1),
    "BatchSink": lambda: BatchSink(None, bootstrap="127.0.0.1:9", give_up_after=1.0),
    "Publisher": lambda: Publisher(PublisherConfig(feed_key=FEED_KEY)),
    "EventLog": lambda: EventLog(KafkaSettings(), client_id="x"),
    "Window": lambda: Window(size=1, settle=_settle),
    "OrderProcessor": lambda: OrderProcessor(
        OrderEntryConfig(feed_key=FEED_KEY), tradable={"A"}, redis_client=aioredis.Redis()
    ),
    "OrderEntryService": lambda: OrderEntryService(
        OrderEntryConfig(feed_key=FEED_KEY), tradable=["A"]
    ),
    "PositionKeeper": lambda: PositionKeeper(
        PortfolioConfig(feed_key=FEED_KEY),
        store=PositionStore(aioredis.Redis(), prefix="x"),
        on_position=print,
    ),
    "PortfolioService": lambda: PortfolioService(
        PortfolioConfig(feed_key=FEED_KEY), watchlist=["A"]
    ),
}


@pytest.mark.parametrize("name", PARTS)
async def test_stop_before_start_and_twice_is_harmless(name: str) -> None:
    part = PARTS[name]()
    await part.stop()
    await part.stop()
