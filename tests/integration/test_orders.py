"""order_entry's order processor: a real faust worker on the real broker, quotes in real Redis.

One order_entry (cache + faust app) is started for the whole module, because a consumer group's
first join costs about the rebalance timeout on the embedded broker; each test uses its own
order ids. Quotes are published by hand so that prices are known exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgpack
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.cache.reader import QuoteReader
from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.runtime import EmbeddedStack
from common.schema import (
    DeadLetter,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
    decode,
    decode_as,
)
from common.schema.orders import TERMINAL_EVENTS, OrderEvent
from common.topics import symbol_key
from order_entry.config import OrderEntryConfig
from order_entry.service import OrderEntryService
from tests.feedkey import FEED_KEY, signed
from tests.helpers import eventually

FRESH = "AAAA"  # bid 100.00 / ask 100.10, fresh
STALE = "AAAB"  # quoted an hour ago
NO_QUOTE = "AAAC"  # tradable, never quoted
NOT_TRADABLE = "ZZZZ"
TRADABLE = (FRESH, STALE, NO_QUOTE)
BID, ASK = 100.0, 100.1


@dataclass
class Orders:
    """A client of the running order_entry: sends commands, collects every event by order id."""

    service: OrderEntryService
    kafka: KafkaSettings
    producer: AIOKafkaProducer
    events: dict[str, list[OrderEvent]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)

    async def send_raw(self, value: bytes, key: bytes | None = symbol_key(FRESH)) -> None:
        await self.producer.send_and_wait(self.kafka.topics.orders_commands, value, key=key)

    async def send(
        self, symbol: str = FRESH, side: str = "B", qty: int = 10, limit: float | None = None
    ) -> str:
        order_id = uuid.uuid4().hex
        order = NewOrder(
            order_id=order_id,
            account="acc-1",
            symbol=symbol,
            side=side,
            qty=qty,
            limit=limit,
            ts_ns=time.time_ns(),
        )
        await self.send_raw(order.encode(), symbol_key(symbol))
        return order_id

    async def answer(self, order_id: str) -> list[OrderEvent]:
        def terminal() -> bool:
            return any(isinstance(e, TERMINAL_EVENTS) for e in self.events.get(order_id, []))

        async def done() -> bool:
            return terminal()

        await eventually(done, timeout=20, what=f"a terminal event for {order_id}")
        return self.events[order_id]


async def publish_quotes(kafka: KafkaSettings) -> None:
    now = time.time_ns()
    quotes = [
        Quote(symbol=FRESH, epoch=1, seq=1, ts_ns=now, bid=BID, ask=ASK, bid_size=5, ask_size=5),
        Quote(
            symbol=STALE,
            epoch=1,
            seq=1,
            ts_ns=now - 3600 * 10**9,
            bid=50.0,
            ask=50.1,
            bid_size=5,
            ask_size=5,
        ),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for q in quotes:
            value, key = q.encode(), symbol_key(q.symbol)
            await producer.send_and_wait(
                kafka.topics.quotes, value, key=key, headers=signed(kafka.topics.quotes, key, value)
            )
    finally:
        await producer.stop()


async def collect(consumer: AIOKafkaConsumer, orders: Orders) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                if tp.topic == orders.kafka.topics.dead_letter("order_entry"):
                    orders.dead.append(decode_as(record.value, DeadLetter))
                    continue
                event = decode(record.value)
                assert isinstance(event, OrderEvent)
                orders.events.setdefault(event.order_id, []).append(event)


@pytest_asyncio.fixture(scope="module")
async def orders(stack: EmbeddedStack) -> AsyncIterator[Orders]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka = KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=prefix, partitions=4)
    config = OrderEntryConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=prefix,
        partitions=4,
        redis_url=stack.redis_url("order_entry"),
        redis_prefix=f"{prefix}mf:",
        snapshot_timeout=0.5,  # no publisher here: replay the hand-published quotes instead
        stale_after=30.0,
        max_qty=1000,
        limit_band=0.05,
        session_timeout=2.0,  # a join waits about half of it on the embedded broker
    )
    async with contextlib.AsyncExitStack() as stack_:
        started = time.monotonic()
        service = await stack_.enter_async_context(OrderEntryService(config, tradable=TRADABLE))
        print(f"order_entry with its faust app started in {time.monotonic() - started:.1f}s")
        await publish_quotes(kafka)
        reader = QuoteReader.from_url(config.redis_url, prefix=config.redis_prefix)
        stack_.push_async_callback(reader.aclose)

        async def quoted() -> bool:
            got = await reader.get_many([FRESH, STALE])
            return all(v is not None for v in got.values())

        await eventually(quoted, what="the hand-published quotes in the cache")
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        stack_.push_async_callback(producer.stop)
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        stack_.push_async_callback(consumer.stop)
        consumer.assign(
            [TopicPartition(kafka.topics.orders_events, p) for p in range(4)]
            + [TopicPartition(kafka.topics.dead_letter("order_entry"), 0)]
        )
        client = Orders(service, kafka, producer)
        task = asyncio.create_task(collect(consumer, client))

        async def cancel_collector() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack_.push_async_callback(cancel_collector)
        yield client


async def test_market_buy_fills_at_the_ask_and_sell_at_the_bid(orders: Orders) -> None:
    buy = await orders.send(side="B", qty=10)
    sell = await orders.send(side="S", qty=7)
    buy_events = await orders.answer(buy)
    sell_events = await orders.answer(sell)
    assert [type(e) for e in buy_events] == [OrderAccepted, OrderFilled]
    assert [type(e) for e in sell_events] == [OrderAccepted, OrderFilled]
    fill_buy, fill_sell = buy_events[1], sell_events[1]
    assert isinstance(fill_buy, OrderFilled)
    assert isinstance(fill_sell, OrderFilled)
    assert (fill_buy.price, fill_buy.qty, fill_buy.side, fill_buy.account) == (
        ASK,
        10,
        "B",
        "acc-1",
    )
    assert (fill_sell.price, fill_sell.qty, fill_sell.side) == (BID, 7, "S")


async def test_marketable_limit_fills_and_non_marketable_limit_is_cancelled(orders: Orders) -> None:
    fills = await orders.send(side="B", limit=ASK + 0.5)
    ioc_buy = await orders.send(side="B", limit=ASK - 0.05)
    ioc_sell = await orders.send(side="S", limit=BID + 0.05)
    filled = await orders.answer(fills)
    assert isinstance(filled[-1], OrderFilled)
    assert filled[-1].price == ASK
    for order_id in (ioc_buy, ioc_sell):
        events = await orders.answer(order_id)
        assert [type(e) for e in events] == [OrderAccepted, OrderCancelled]


async def test_each_reject_reason(orders: Orders) -> None:
    sent = {
        "UNKNOWN_SYMBOL": await orders.send(symbol=NOT_TRADABLE),
        "QTY_TOO_LARGE": await orders.send(qty=1001),
        "NO_QUOTE": await orders.send(symbol=NO_QUOTE),
        "STALE_QUOTE": await orders.send(symbol=STALE),
        "LIMIT_OUT_OF_BAND": await orders.send(limit=ASK * 1.2),
    }
    bad_id = uuid.uuid4().hex
    bad = {"v": 1, "type": "order.new", "order_id": bad_id, "symbol": FRESH, "side": "B"}
    await orders.send_raw(msgpack.packb(bad))
    sent["MALFORMED"] = bad_id
    for reason, order_id in sent.items():
        events = await orders.answer(order_id)
        assert len(events) == 1, events
        rejected = events[0]
        assert isinstance(rejected, OrderRejected)
        assert rejected.reason == reason, rejected
    malformed = orders.events[bad_id][0]
    assert isinstance(malformed, OrderRejected)
    assert malformed.symbol == FRESH
    assert "'account'" in malformed.text  # the first problem found, in plain words


async def test_command_without_order_id_is_dead_lettered(orders: Orders) -> None:
    marker = uuid.uuid4().hex
    garbage = b"\xc1 not msgpack " + marker.encode()
    await orders.send_raw(garbage)

    async def lettered() -> bool:
        return any(d.value == garbage for d in orders.dead)

    await eventually(lettered, timeout=20, what="the dead letter")
    letter = next(d for d in orders.dead if d.value == garbage)
    assert letter.topic == orders.kafka.topics.orders_commands
    assert letter.key == symbol_key(FRESH)
    # and the processor goes on
    after = await orders.send()
    assert isinstance((await orders.answer(after))[-1], OrderFilled)


async def test_duplicate_command_gets_one_terminal_event(orders: Orders) -> None:
    order = NewOrder(
        order_id=uuid.uuid4().hex,
        account="acc-1",
        symbol=FRESH,
        side="B",
        qty=3,
        limit=None,
        ts_ns=time.time_ns(),
    )
    before = orders.service.orders.stats.duplicates if orders.service.orders else 0
    await orders.send_raw(order.encode())
    await orders.send_raw(order.encode())
    # Same symbol, same partition, one agent: once this later order is answered, so is the copy.
    marker = await orders.send()
    await orders.answer(marker)
    events = orders.events[order.order_id]
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    assert orders.service.orders is not None
    assert orders.service.orders.stats.duplicates == before + 1


@pytest.mark.parametrize("symbol", [FRESH])
async def test_ledger_resends_a_decision_recorded_but_not_acknowledged(
    orders: Orders, symbol: str
) -> None:
    """A crash between recording and acknowledging: the first decision is sent, not a new one."""
    processor = orders.service.orders
    assert processor is not None
    order_id = uuid.uuid4().hex
    recorded = OrderRejected(
        order_id=order_id, symbol=symbol, reason="NO_QUOTE", text="decided first", ts_ns=1
    )
    assert processor.events_log is not None
    partition = partition_for(symbol, 4)
    bound = processor.events_log.lower_bound(partition)
    await processor.ledger.claim(
        order_id, [recorded.encode()], partition=partition, scan_from=bound
    )
    order = NewOrder(
        order_id=order_id,
        account="acc-1",
        symbol=symbol,
        side="B",
        qty=1,
        limit=None,
        ts_ns=time.time_ns(),
    )
    await orders.send_raw(order.encode(), symbol_key(symbol))
    assert await orders.answer(order_id) == [recorded]


async def test_ledger_does_not_resend_a_decision_already_on_the_events_topic(
    orders: Orders,
) -> None:
    """A crash after the broker's ack, before the ledger's "sent" mark: nothing is sent twice."""
    processor = orders.service.orders
    assert processor is not None
    assert processor.events_log is not None
    partition = partition_for(FRESH, 4)
    order_id = uuid.uuid4().hex
    recorded = OrderRejected(
        order_id=order_id, symbol=FRESH, reason="NO_QUOTE", text="decided first", ts_ns=1
    )
    bound = processor.events_log.lower_bound(partition)
    await processor.ledger.claim(
        order_id, [recorded.encode()], partition=partition, scan_from=bound
    )
    # What the killed process had sent and the broker had acknowledged:
    await orders.producer.send_and_wait(
        orders.kafka.topics.orders_events,
        recorded.encode(),
        key=symbol_key(FRESH),
        partition=partition,
    )
    before = processor.stats.recovered
    order = NewOrder(
        order_id=order_id,
        account="acc-1",
        symbol=FRESH,
        side="B",
        qty=1,
        limit=None,
        ts_ns=time.time_ns(),
    )
    await orders.send_raw(order.encode(), symbol_key(FRESH))
    marker = await orders.send()  # same partition: answered after the recovered command
    await orders.answer(marker)
    assert orders.events[order_id] == [recorded]
    assert processor.stats.recovered == before + 1
