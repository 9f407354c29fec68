"""The position keeper: a faust agent on ``orders.events`` that applies every OrderFilled.

faust runs inside the service's asyncio lifecycle (``App.start()`` / ``App.stop()``, no faust
Worker or CLI), as in order_entry. Processing is at-least-once (never ``exactly_once``: the
embedded broker's transactions are not reliable); the store applies each fill once by order id.
Every position a fill changed is handed to ``on_position`` (the service subscribes its quote
cache to a newly held symbol and evicts a flat one later) without waiting, so a slow snapshot
never holds up the fills. A record on ``orders.events`` that is not a valid event goes to
``dlq.portfolio`` with the reason; events other than fills are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.exceptions

from common.cache.deadletters import DeadLetterSink
from common.errors import SchemaError
from common.faustapp import FailStop, make_app, processed
from common.kafka import TopicSpec, ensure_topics, start_producer
from common.schema import OrderFilled, decode
from portfolio.config import PortfolioConfig
from portfolio.positions import Position, PositionStore

log = logging.getLogger("portfolio.positions")

_RETRY_DELAY_S = 0.5


class PositionKeeper:
    def __init__(
        self,
        config: PortfolioConfig,
        *,
        store: PositionStore,
        on_position: Callable[[Position], None],
        service: str = "portfolio",
    ) -> None:
        self.config = config
        self.store = store
        self.on_position = on_position
        self.service = service
        self.app_id = f"{config.topic_prefix}marketfeed.{service}.positions"
        self.applied = 0
        self.fail_stop = FailStop("position keeper")
        self.redelivered = 0
        self.dead_letters = 0  # undecodable records on the events topic
        self._dead: DeadLetterSink | None = None
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self.stop()
            raise

    async def _open(self) -> None:
        c = self.config
        dlq = c.topics.dead_letter(self.service)
        await ensure_topics(c, [TopicSpec(c.topics.orders_events, c.partitions), TopicSpec(dlq, 1)])
        producer = await start_producer(c, client_id=f"{self.service}-positions")
        self._stack.push_async_callback(producer.stop)
        self._dead = DeadLetterSink(producer, topic=dlq, service=self.service)
        datadir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="pf-faust-"))
        app = make_app(self.app_id, settings=c, datadir=datadir)
        events = app.topic(c.topics.orders_events, key_serializer="raw", value_serializer="raw")
        app.agent(events, name="portfolio.keep_positions")(self._agent)
        started = time.monotonic()
        # Registered first: a start cancelled half-way (a stop signal during the group join)
        # must still stop whatever faust already started.
        self._stack.push_async_callback(app.stop)
        await app.start()
        log.info("position keeper %s started in %.1fs", self.app_id, time.monotonic() - started)

    async def stop(self) -> None:
        await self._stack.aclose()

    def _agent(self, stream: Any) -> AsyncIterator[None]:
        return processed(stream, self._handle_record, self.fail_stop)

    async def _handle_record(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> None:
        await self.handle(value, key=key, partition=partition, offset=offset)

    async def handle(
        self, value: bytes | None, *, key: bytes | None = None, partition: int = 0, offset: int = 0
    ) -> None:
        try:
            event = decode(value or b"")
        except SchemaError as exc:
            await self._dead_letter(key, value, partition, offset, str(exc))
            return
        if not isinstance(event, OrderFilled):
            return
        while True:
            try:
                position = await self.store.apply(event)
                break
            except redis.exceptions.RedisError as exc:  # away, read-only, out of memory...
                # Hold the flow rather than drop a fill: its offset commits only after this.
                log.warning("positions store unavailable (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY_S)
        if position is None:
            self.redelivered += 1
            return
        self.applied += 1
        self.on_position(position)

    async def _dead_letter(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, reason: str
    ) -> None:
        sink = self._dead
        assert sink is not None, "keeper not started"
        letter = sink.letter(
            source_topic=self.config.topics.orders_events,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason[:2000],
        )
        # The record's offset commits only after this: never drop it unrecorded.
        await sink.send_until_stored([letter])
        self.dead_letters += 1
        log.warning("orders.events %d@%d dead-lettered: %s", partition, offset, reason)
