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

import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.exceptions

from common.cache.batch import Rejected
from common.cache.deadletters import LETTER_MAX_BYTES, DeadLetterSink, dead_letter_topic
from common.errors import SchemaError
from common.faustapp import HOLD, FailStop, make_app, processed
from common.kafka import TopicSpec, close_producer, ensure_topics, start_producer
from common.lifecycle import Lifecycle
from common.redisconn import redis_retry
from common.report import PeriodicReport
from common.retry import Retry
from common.schema import OrderFilled, decode
from portfolio.config import PortfolioConfig
from portfolio.positions import Position, PositionStore

log = logging.getLogger("portfolio.positions")


def positions_retry(config: PortfolioConfig, service: str) -> Retry:
    """The ``Retry`` of the Redis that holds positions (every kind of Redis error)."""
    return redis_retry(
        service,
        config.redis_url,
        errors=(redis.exceptions.RedisError,),
        backoff=HOLD,
        logger=log,
    )


class PositionKeeper(Lifecycle):
    def __init__(
        self,
        config: PortfolioConfig,
        *,
        store: PositionStore,
        on_position: Callable[[Position], None],
        service: str = "portfolio",
        store_retry: Retry | None = None,
    ) -> None:
        """``store_retry``: the ``Retry`` of ``store``'s Redis, if its owner has one already."""
        self.config = config
        self.store = store
        self.on_position = on_position
        self.service = service
        self.app_id = config.group_id(service, "positions")
        self.applied = 0
        self.fail_stop = FailStop("position keeper")
        self.redelivered = 0
        self.dead_letters = 0  # undecodable records on the events topic
        # Every kind of Redis error holds the flow (away, read-only, out of memory...) rather
        # than drop a fill: its offset commits only after it was applied.
        self.store_retry = store_retry or positions_retry(config, service)
        self._dead: DeadLetterSink | None = None

    async def _start(self) -> None:
        c = self.config
        # First in, so last out: its final line counts what the stops before it let through.
        await self.resources.enter_async_context(
            PeriodicReport(
                self.describe, logger=log, prefix="positions: ", final="positions at stop: "
            )
        )
        dlq = c.topics.dead_letter(self.service)
        await ensure_topics(
            c, [TopicSpec(c.topics.orders_events, c.partitions), dead_letter_topic(dlq)]
        )
        producer = await start_producer(
            c, client_id=f"{self.service}-positions", max_request_size=LETTER_MAX_BYTES
        )
        self.resources.push_async_callback(close_producer, producer)
        self._dead = DeadLetterSink(producer, topic=dlq, service=self.service)
        datadir = self.resources.enter_context(tempfile.TemporaryDirectory(prefix="pf-faust-"))
        app = make_app(self.app_id, settings=c, datadir=datadir)
        events = app.topic(c.topics.orders_events, key_serializer="raw", value_serializer="raw")
        app.agent(events, name="portfolio.keep_positions")(self._agent)
        started = time.monotonic()
        # Registered first: a start cancelled half-way (a stop signal during the group join)
        # must still stop whatever faust already started.
        self.resources.push_async_callback(app.stop)
        await app.start()
        log.info("position keeper %s started in %.1fs", self.app_id, time.monotonic() - started)

    def describe(self) -> str:
        return (
            f"{self.applied} fills applied, {self.redelivered} delivered again (skipped),"
            f" {self.dead_letters} dead-lettered"
        )

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
        position = await self.store_retry.run(lambda: self.store.apply(event), what="a fill")
        if position is None:
            self.redelivered += 1
            return
        self.applied += 1
        self.on_position(position)

    async def _dead_letter(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, reason: str
    ) -> None:
        assert self._dead is not None, "keeper not started"
        # The record's offset commits only after this: never drop it unrecorded.
        rejected = Rejected(partition, offset, key, value, reason)
        await self._dead.store_rejected(self.config.topics.orders_events, [rejected])
        self.dead_letters += 1
