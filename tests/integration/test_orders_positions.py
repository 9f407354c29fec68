"""portfolio's position keeper: a real faust worker applies fills from orders.events to Redis.

Fills are produced straight onto orders.events (order_entry is tested on its own), so the
reference P&L computed here can be compared with what portfolio kept, including a fill
delivered twice, events that are not fills and a record that is not an event (dead-lettered).
The quote cache subscribes a symbol on its first fill and evicts it once flat for the grace
period (but not when the position re-opens within it).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack
from common.schema import DeadLetter, OrderAccepted, OrderFilled, Quote, decode_as
from common.topics import symbol_key
from marketfeed.positions import PositionsSettings, lookup
from portfolio.config import PortfolioConfig
from portfolio.service import PortfolioService
from tests.feedkey import FEED_KEY, signed
from tests.helpers import eventually

SYMBOLS = ("AAAA", "AAAB", "AAAC")
ACCOUNTS = ("alice", "bob")


def reference(fills: list[OrderFilled]) -> dict[tuple[str, str], tuple[int, float, float]]:
    """qty, average cost and realised P&L per (account, symbol), by cost basis."""
    book: dict[tuple[str, str], list[float]] = {}  # qty, cost (qty * avg), realised
    for f in fills:
        qty, cost, realised = book.get((f.account, f.symbol), [0, 0.0, 0.0])
        signed = f.qty if f.side == "B" else -f.qty
        if qty == 0 or (qty > 0) == (signed > 0):
            qty, cost = qty + signed, cost + signed * f.price
        else:
            avg = cost / qty
            closed = min(abs(signed), abs(qty)) * (1 if signed > 0 else -1)
            realised += -closed * (f.price - avg)
            rest = signed - closed  # what is left of the fill after closing
            qty += signed
            cost = qty * avg if rest == 0 else rest * f.price
            if qty == 0:
                cost = 0.0
        book[(f.account, f.symbol)] = [qty, cost, realised]
    return {k: (int(q), (c / q if q else 0.0), r) for k, (q, c, r) in book.items()}


@pytest.mark.slow
async def test_positions_and_pnl_equal_the_reference(
    stack: EmbeddedStack, kafka: KafkaSettings
) -> None:
    rng = random.Random(7)
    now = time.time_ns()
    fills = [
        OrderFilled(
            order_id=uuid.uuid4().hex,
            account=rng.choice(ACCOUNTS),
            symbol=rng.choice(SYMBOLS),
            side=rng.choice("BS"),
            qty=rng.randint(1, 50),
            price=round(rng.uniform(90, 110), 2),
            ts_ns=now + i,
        )
        for i in range(60)
    ]
    config = PortfolioConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=stack.redis_url("portfolio"),
        redis_prefix=f"{kafka.topic_prefix}mf:",
        snapshot_timeout=0.5,
        session_timeout=2.0,
        stale_after=60.0,
        evict_after=1.0,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        async with PortfolioService(config, watchlist=()) as service:
            assert service.keeper is not None
            topic = kafka.topics.orders_events
            mark = Quote(
                symbol="AAAA",
                epoch=1,
                seq=1,
                ts_ns=time.time_ns(),
                bid=99.0,
                ask=101.0,
                bid_size=1,
                ask_size=1,
            )
            value = mark.encode()
            await producer.send_and_wait(
                kafka.topics.quotes,
                value,
                key=b"AAAA",
                headers=signed(kafka.topics.quotes, b"AAAA", value),
            )
            noise = OrderAccepted(
                order_id="x", account="alice", symbol="AAAA", side="B", qty=1, ts_ns=now
            )
            await producer.send_and_wait(topic, noise.encode(), key=b"AAAA")
            await producer.send_and_wait(topic, b"not msgpack", key=b"AAAA")
            for f in fills:
                await producer.send_and_wait(topic, f.encode(), key=symbol_key(f.symbol))
            await producer.send_and_wait(topic, fills[0].encode(), key=symbol_key(fills[0].symbol))

            async def applied() -> bool:
                assert service.keeper is not None
                return service.keeper.applied + service.keeper.redelivered >= len(fills) + 1

            await eventually(applied, timeout=30, what="every fill applied")
            assert service.keeper.applied == len(fills)
            assert service.keeper.redelivered == 1
            assert service.keeper.dead_letters == 1
            assert await dead_letters(kafka) == [b"not msgpack"]

            want = reference(fills)
            got = {(p.account, p.symbol): p for p in await service.store.all()}
            assert set(got) == set(want)
            for key, (qty, avg, realised) in want.items():
                assert got[key].qty == qty, key
                assert got[key].avg_price == pytest.approx(avg), key
                assert got[key].realised == pytest.approx(realised), key

            async def subscribed() -> bool:
                return set(SYMBOLS) <= service.cache.interest

            await eventually(subscribed, what="the cache to follow every traded symbol")

            settings = PositionsSettings(
                bootstrap=kafka.bootstrap,
                redis_url=config.redis_url,
                redis_prefix=config.redis_prefix,
                topic_prefix=kafka.topic_prefix,
                stale_after=60.0,
                account=("alice",),
            )

            async def marked() -> bool:
                rows = await lookup(settings)
                return any(r.mark is not None for r in rows if r.position.symbol == "AAAA")

            await eventually(marked, what="AAAA marked from the cache")
            rows = await lookup(settings)
            assert {r.position.account for r in rows} == {"alice"}
            for row in rows:
                if row.position.symbol == "AAAA":
                    assert row.mark == 100.0
                    assert row.unrealised == pytest.approx(
                        row.position.qty * (100.0 - row.position.avg_price)
                    )
            await subscribe_then_evict(service, producer, kafka)
    finally:
        await producer.stop()


async def dead_letters(kafka: KafkaSettings) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(kafka.topics.dead_letter("portfolio"), 0)
        consumer.assign([tp])
        batch = await consumer.getmany(tp, timeout_ms=2000)
        letters = [decode_as(r.value, DeadLetter) for r in batch.get(tp, [])]
        assert all(d.topic == kafka.topics.orders_events for d in letters)
        assert all(d.reason for d in letters)
        return [d.value for d in letters]
    finally:
        await consumer.stop()


async def subscribe_then_evict(
    service: PortfolioService, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    """AAAD: subscribed on its first fill, kept while re-opened in the grace, evicted when flat."""
    symbol, topic = "AAAD", kafka.topics.orders_events
    assert symbol not in service.cache.interest
    quote = Quote(
        symbol=symbol,
        epoch=1,
        seq=1,
        ts_ns=time.time_ns(),
        bid=20.0,
        ask=20.2,
        bid_size=1,
        ask_size=1,
    )
    value, qkey = quote.encode(), symbol_key(symbol)
    await producer.send_and_wait(
        kafka.topics.quotes, value, key=qkey, headers=signed(kafka.topics.quotes, qkey, value)
    )

    async def fill(side: str) -> None:
        assert service.keeper is not None
        before = service.keeper.applied
        event = OrderFilled(
            order_id=uuid.uuid4().hex,
            account="carol",
            symbol=symbol,
            side=side,
            qty=5,
            price=20.1,
            ts_ns=time.time_ns(),
        )
        await producer.send_and_wait(topic, event.encode(), key=symbol_key(symbol))

        async def applied() -> bool:
            assert service.keeper is not None
            return service.keeper.applied > before

        await eventually(applied, what=f"the {side} fill of {symbol} applied")

    key = f"{service.config.redis_prefix}q:{symbol}"

    async def cached() -> bool:
        return bool(await service.redis.exists(key))

    await fill("B")
    await eventually(cached, what=f"{symbol}'s quote cached after the first fill")
    assert symbol in service.cache.interest
    await fill("S")  # flat: eviction is due in 1 s ...
    await fill("B")  # ... but the position re-opens within the grace period
    await asyncio.sleep(1.5)
    assert symbol in service.cache.interest
    assert await cached()
    await fill("S")

    async def evicted() -> bool:
        return symbol not in service.cache.interest and not await cached()

    await eventually(evicted, what=f"{symbol} evicted once flat for the grace period")
