"""The order processor: a faust agent on ``orders.commands`` that answers on ``orders.events``.

Runs faust inside the service's own asyncio lifecycle: ``start()`` builds a ``faust.App`` and
awaits ``App.start()`` (a mode Service: it starts the consumer, joins the group and starts the
agent), ``stop()`` awaits ``App.stop()``. No faust Worker and no faust CLI: the Worker would
install its own signal handlers and logging and own the event loop, which belong to our service.

Per command: read it, decide (pure, ``validate``), record the decision in the order ledger
(Redis, before emitting), send the events with our own acks=all producer (``answers``), and put
the command in the window (``inflight``), which awaits the acknowledgement, marks the ledger
entry sent and only then acks the command to faust, in order. faust commits offsets of acked
commands only (at-least-once; ``exactly_once`` is never used: the embedded broker's transactions
are not reliable). A command without a readable order id goes to the dead-letter topic.

Scaling: every order_entry of one consumer group shares the order partitions. On each
rebalance faust hands this process its order partitions; ``on_assigned`` (the service) narrows
the quote cache to the same partitions (orders and quotes are co-partitioned) and returns once
it is warm. Until then commands wait rather than being rejected for a quote that is on its way.
Each rebalance is recorded in ``P orders:meta`` (``assigned``, ``rebalances``, ``joined_ns``,
``ready_ns``) for operators and the benchmark.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Set
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions
from aiokafka.errors import KafkaError

from common.cache.batch import Rejected
from common.cache.deadletters import LETTER_MAX_BYTES, DeadLetterSink, dead_letter_topic
from common.cache.keys import CacheKeys
from common.cache.reader import QuoteReader
from common.errors import BrokerUnavailableError, CacheUnavailableError
from common.faustapp import HOLD, FailStop, make_app
from common.kafka import TopicSpec, close_producer, ensure_topics, start_producer
from common.lifecycle import Lifecycle
from common.logs import redact_url
from common.report import PeriodicReport
from common.retry import Retry
from common.schema import OrderEvent
from order_entry.answers import Answers
from order_entry.config import OrderEntryConfig
from order_entry.eventlog import EventLog
from order_entry.inflight import Pending, Window
from order_entry.ledger import OrderLedger
from order_entry.quotes import QuoteCache, WarmQuotes
from order_entry.restore import LedgerRestorer
from order_entry.stats import Decided, OrderStats, outcome
from order_entry.validate import Limits, decide, malformed, parse

log = logging.getLogger("order_entry.orders")

T = TypeVar("T")

# Called with this process's order partitions after each rebalance; returns once the quote
# cache holds the quotes those partitions need.
AssignedHook = Callable[[frozenset[int]], Awaitable[None]]


class OrderProcessor(Lifecycle):
    def __init__(
        self,
        config: OrderEntryConfig,
        *,
        tradable: Set[str],
        redis_client: aioredis.Redis,
        ledger_client: aioredis.Redis | None = None,
        on_assigned: AssignedHook | None = None,
        service: str = "order_entry",
        cache: QuoteCache | None = None,
    ) -> None:
        """``cache``: the quote cache behind ``redis_client`` (commands wait while it rebuilds)."""
        self.config = config
        self.tradable = frozenset(tradable)
        self.service = service
        self.topics = config.topics
        self.limits = Limits(
            max_qty=config.max_qty, limit_band=config.limit_band, stale_after=config.stale_after
        )
        reader = QuoteReader(
            redis_client, CacheKeys(config.redis_prefix), stale_after=config.stale_after
        )
        self.quotes = WarmQuotes(reader, cache=cache, tradable=self.tradable)
        self.ledger = OrderLedger(
            ledger_client or redis_client,
            prefix=config.ledger_prefix or config.redis_prefix,
            ttl_s=config.order_memory,
        )
        self.redis = redis_client
        self.meta_key = f"{config.redis_prefix}orders:meta"
        self.restorer = LedgerRestorer(
            self.ledger, memory_s=config.order_memory, retrying=self._retrying
        )
        self.on_assigned = on_assigned
        self.assigned: frozenset[int] = frozenset()
        self.rebalances = 0
        # Set while the quote cache matches the current assignment; cleared on revocation.
        self._ready = asyncio.Event()
        # Held from a command's first look at its partition until it is in the window.
        self._in_hand = asyncio.Lock()
        self.fail_stop = FailStop("order processor")
        self.stats = OrderStats()
        # Redis or the broker being away must hold the order flow, not drop a command: the
        # command's offset is only committed after it was answered.
        self._redis_retry = Retry(
            f"{service}: Redis at {_redis_where(config)}",
            errors=(CacheUnavailableError, redis.exceptions.RedisError),  # away, read-only, OOM...
            backoff=HOLD,
            logger=log,
        )
        self._kafka_retry = Retry(
            f"{service}: Kafka at {config.bootstrap}",
            errors=(BrokerUnavailableError, KafkaError),
            backoff=HOLD,
            logger=log,
        )
        self.app_id = config.group_id(service, "orders")
        self.events_log: EventLog | None = None
        self.answers: Answers | None = None
        self.window: Window | None = None
        self._dead: DeadLetterSink | None = None

    async def _start(self) -> None:
        c = self.config
        # First in, so last out: its final line counts what the stops before it settled.
        await self.resources.enter_async_context(
            PeriodicReport(
                self.stats.describe, logger=log, prefix="orders: ", final="orders at stop: "
            )
        )
        await ensure_topics(
            c,
            [
                TopicSpec(self.topics.orders_commands, c.partitions),
                TopicSpec(self.topics.orders_events, c.partitions),
                dead_letter_topic(self.topics.dead_letter(self.service)),
            ],
        )
        producer = await start_producer(
            c, client_id=f"{self.service}-orders", max_request_size=LETTER_MAX_BYTES
        )
        self.resources.push_async_callback(close_producer, producer)
        self._dead = DeadLetterSink(
            producer, topic=self.topics.dead_letter(self.service), service=self.service
        )
        self.events_log = await self.resources.enter_async_context(
            EventLog(c, client_id=f"{self.service}-events-reader")
        )
        self.answers = Answers(
            producer,
            topic=self.topics.orders_events,
            events_log=self.events_log,
            ledger=self.ledger,
            retrying=self._retrying,
        )
        self.window = await self.resources.enter_async_context(
            Window(size=c.orders_window, settle=self._settle)
        )
        self.window.on_failure(self.fail_stop.fail)
        # faust wants a data directory even with in-memory tables; it is ours and temporary.
        datadir = self.resources.enter_context(tempfile.TemporaryDirectory(prefix="oe-faust-"))
        app = make_app(self.app_id, settings=c, datadir=datadir)
        commands = app.topic(
            self.topics.orders_commands, key_serializer="raw", value_serializer="raw"
        )
        app.agent(commands, name=f"{self.service}.process_orders")(self._agent)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        started = time.monotonic()
        # Registered first: a start cancelled half-way (a stop signal during the group join)
        # must still stop whatever faust already started.
        self.resources.push_async_callback(app.stop)
        await app.start()
        log.info(
            "order processor %s started in %.1fs on %s",
            self.app_id,
            time.monotonic() - started,
            self.topics.orders_commands,
        )

    async def stop(self) -> None:
        """Stop the faust app, then the window, the events reader and the producer.

        Safe to call twice.
        """
        await super().stop()
        self.events_log = None
        self.answers = None
        self.window = None

    # faust signal handlers: (sender, *args, signal=..., **kwargs); args[0] is the set of TPs.
    async def _on_revoked(self, _sender: Any, /, *args: Any, **_kwargs: Any) -> None:
        """Awaited before the partitions move: finish what we started on them.

        The next owner re-reads every command we have not acked. A command we are still
        answering, or whose events are still on their way, would look to it like a decision
        recorded before a crash, which it settles by reading orders.events: our late events
        would then make a second answer. So no new command starts, and the one in hand and
        the window are settled first (bounded: a Redis that is away must not hold the group).
        """
        topic = self.topics.orders_commands
        revoked = {tp.partition for tp in args[0] if tp.topic == topic}
        self._ready.clear()
        self.assigned = self.assigned - revoked
        try:
            async with asyncio.timeout(self.config.rebalance_timeout):
                async with self._in_hand:
                    if self.window is not None:
                        await self.window.drained()
        except TimeoutError:
            log.warning("partitions %s revoked with commands still unsettled", sorted(revoked))
        if self.events_log is not None:
            self.events_log.revoked(revoked)

    async def _on_assigned(self, _sender: Any, /, *args: Any, **_kwargs: Any) -> None:
        # An error here would crash the faust app, and a crashed app answers nothing while
        # the process looks alive: report it so that the service stops.
        await self.fail_stop.guard(self._follow(args[0]))

    async def _follow(self, assigned: Iterable[Any]) -> None:
        """Awaited inside faust's rebalance: make the quote cache follow the assignment."""
        joined = time.time_ns()
        topic = self.topics.orders_commands
        partitions = frozenset(tp.partition for tp in assigned if tp.topic == topic)
        self._ready.clear()
        if self.events_log is not None:
            await self._retrying(lambda: self._events_log_ok().assigned(partitions))
        if self.events_log is not None:
            await self.restorer.ensure(partitions, self.events_log)
        if self.on_assigned is not None:
            await self.on_assigned(partitions)
        self.assigned = partitions
        self.rebalances += 1
        ready = time.time_ns()
        log.info(
            "order partitions %s assigned; quote cache warm in %.0f ms",
            sorted(partitions),
            (ready - joined) / 1e6,
        )
        self._ready.set()
        meta = {
            "assigned": ",".join(map(str, sorted(partitions))),
            "rebalances": self.rebalances,
            "joined_ns": joined,
            "ready_ns": ready,
        }
        try:
            await self.redis.hset(self.meta_key, mapping=meta)  # type: ignore[arg-type]
        except redis.exceptions.RedisError as exc:
            log.warning("could not record the assignment in Redis: %s", exc)

    async def _agent(self, stream: Any) -> AsyncIterator[None]:
        # Acks are ours (see common.faustapp): the window acks a command once it is answered.
        stream.enable_acks = False
        async for event in stream.events():
            message = event.message
            answer = functools.partial(
                self.handle,
                event.key,
                event.value,
                partition=message.partition,
                offset=message.offset,
                ack=event.ack,
            )
            await self.fail_stop.guard(self._retrying(answer))
            yield None

    async def handle(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int,
        offset: int,
        ack: Callable[[], object],
    ) -> None:
        """Answer one command; idempotent per order id (see ``order_entry.ledger``)."""
        await self._ready.wait()
        await self.quotes.wait_warm()
        async with self._in_hand:
            if partition not in self.assigned:
                # Revoked while it waited: not acked, so its next owner answers it.
                return
            await self._answer(key, value, partition=partition, offset=offset, ack=ack)

    async def _answer(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int,
        offset: int,
        ack: Callable[[], object],
    ) -> None:
        window = self._window_ok()
        now = time.time_ns()
        parsed = parse(value)
        if parsed.order is not None:
            cached = await self.quotes.get(parsed.order.symbol)
            events: list[OrderEvent] = decide(
                parsed.order,
                tradable=self.tradable,
                quote=cached.quote if cached is not None else None,
                limits=self.limits,
                now_ns=now,
            )
            order_id = parsed.order.order_id
        elif parsed.order_id is not None:
            events = [malformed(parsed, now)]
            order_id = parsed.order_id
        else:
            assert self._dead is not None, "order processor not started"
            reason = f"unanswerable command (no order id): {parsed.error}"
            rejected = Rejected(partition, offset, key, value, reason)
            await self._dead.store_rejected(self.topics.orders_commands, [rejected])
            self.stats.dead_letters += 1
            await window.put(Pending(ack=ack, partition=partition))
            return
        await window.wait_for(order_id)  # a copy of a command still in the window
        claim = await self.restorer.claim(
            order_id,
            [e.encode() for e in events],
            partition=partition,
            events_log=self._events_log_ok(),
            owned=self.assigned,
            settled=window.drained,
        )
        if claim.already_sent:
            log.info("order %s: duplicate command, already answered; nothing emitted", order_id)
            await window.put(Pending(ack=ack, partition=partition))
            self.stats.duplicates += 1
            return
        if not claim.first:
            await self._recover(order_id, partition, key, claim.events, claim.scan_from, ack)
            return
        futures = await self._answers_ok().send(key, partition, claim.events)
        await window.put(
            Pending(
                ack=ack,
                partition=partition,
                order_id=order_id,
                key=key,
                events=claim.events,
                futures=futures,
                terminal=Decided.of(events[-1]),
                scan_from=claim.scan_from,
            )
        )

    async def _recover(
        self,
        order_id: str,
        partition: int,
        key: bytes | None,
        events: list[bytes],
        scan_from: int,
        ack: Callable[[], object],
    ) -> None:
        """Decided before a crash, maybe sent: send only what orders.events lacks."""
        sent = await self._answers_ok().recover(order_id, partition, key, events, scan_from)
        # Counted once it is done: a failure before here is retried, and would count it twice.
        self.stats.resent += bool(sent)
        self.stats.recovered += not sent
        await self._window_ok().put(Pending(ack=ack, partition=partition, terminal=outcome(events)))

    async def _settle(self, pending: Pending) -> None:
        """The window's step: the events are stored, so the command is answered."""
        if pending.order_id is not None:
            await self._answers_ok().settle(pending)
        self.stats.answered(pending.terminal)

    @property
    def retries(self) -> dict[str, Retry]:
        """The state of the Redis and broker it waits out: for metrics."""
        return {"redis": self._redis_retry, "kafka": self._kafka_retry}

    def _window_ok(self) -> Window:
        assert self.window is not None, "order processor not started"
        return self.window

    def _answers_ok(self) -> Answers:
        assert self.answers is not None, "order processor not started"
        return self.answers

    def _events_log_ok(self) -> EventLog:
        assert self.events_log is not None, "order processor not started"
        return self.events_log

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until neither its Redis nor the broker is away (each logged once)."""
        return await self._redis_retry.run(lambda: self._kafka_retry.run(attempt))


def _redis_where(config: OrderEntryConfig) -> str:
    where = redact_url(config.redis_url)
    if config.ledger_url is not None:
        where += f" (ledger at {redact_url(config.ledger_url)})"
    return where
