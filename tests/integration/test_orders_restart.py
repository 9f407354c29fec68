"""order_entry killed (SIGKILL) mid-stream and restarted: every command still gets one decision.
And order_entry stopped while its Redis is away: it stops at once, and the command it could not
answer is answered by the next process rather than lost.

Real processes: ``python -m order_entry`` (cache + faust worker) on the session's broker and
Redis, killed while commands flow, then started again in the same consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack
from common.runtime.servers import EmbeddedRedis
from common.schema import NewOrder, Quote, decode
from common.schema.orders import TERMINAL_EVENTS, OrderEvent
from common.topics import symbol_key
from tests.helpers import eventually, spawn

SYMBOL = "AAAA"
COMMANDS = 40


@contextlib.asynccontextmanager
async def order_entry(
    stack: EmbeddedStack, kafka: KafkaSettings, log: Path, redis_url: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    argv = [
        sys.executable,
        "-m",
        "order_entry",
        "--bootstrap",
        kafka.bootstrap,
        "--topic-prefix",
        kafka.topic_prefix,
        "--partitions",
        str(kafka.partitions),
        "--redis-url",
        redis_url or stack.redis_url("order_entry"),
        "--redis-prefix",
        f"{kafka.topic_prefix}mf:",
        "--tradable",
        SYMBOL,
        "--snapshot-timeout",
        "0.5",
        "--session-timeout",
        "2",
        "--stale-after",
        "300",
    ]
    with log.open("ab") as out:
        proc = await spawn(*argv, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.mark.slow
async def test_killed_and_restarted_order_entry_decides_each_command_once(
    stack: EmbeddedStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka.topics
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    events: dict[str, list[OrderEvent]] = {}

    async def collect() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    assert isinstance(event, OrderEvent)
                    events.setdefault(event.order_id, []).append(event)

    def answered() -> int:
        return sum(any(isinstance(e, TERMINAL_EVENTS) for e in v) for v in events.values())

    log = tmp_path / "order_entry.log"
    collector: asyncio.Task[None] | None = None
    try:
        quote = Quote(
            symbol=SYMBOL,
            epoch=1,
            seq=1,
            ts_ns=time.time_ns(),
            bid=10.0,
            ask=10.02,
            bid_size=1,
            ask_size=1,
        )
        await producer.send_and_wait(topics.quotes, quote.encode(), key=symbol_key(SYMBOL))
        ids = [uuid.uuid4().hex for _ in range(COMMANDS)]

        async def send(order_id: str) -> None:
            order = NewOrder(
                order_id=order_id,
                account="a",
                symbol=SYMBOL,
                side="B",
                qty=1,
                limit=None,
                ts_ns=time.time_ns(),
            )
            await producer.send_and_wait(
                topics.orders_commands, order.encode(), key=symbol_key(SYMBOL)
            )

        async with order_entry(stack, kafka, log) as first:
            for order_id in ids[:10]:
                await send(order_id)
            # orders.events exists once order_entry started; read it from the beginning.
            consumer.assign([TopicPartition(topics.orders_events, p) for p in range(4)])
            collector = asyncio.create_task(collect())

            async def some_answered() -> bool:
                return answered() >= 5

            await eventually(some_answered, timeout=30, what="order_entry to answer orders")
            for order_id in ids[10:20]:
                await send(order_id)
            first.kill()  # SIGKILL: no clean shutdown, no final offset commit
            await first.wait()
        for order_id in ids[20:30]:
            await send(order_id)
        started = time.monotonic()
        async with order_entry(stack, kafka, log):

            async def all_answered() -> bool:
                return answered() >= 30

            await eventually(all_answered, timeout=40, what="the restarted order_entry")
            print(
                f"restarted order_entry answered its backlog in {time.monotonic() - started:.1f}s"
            )
            for order_id in ids[30:]:
                await send(order_id)

            async def everything() -> bool:
                return answered() >= COMMANDS

            await eventually(everything, timeout=20, what="all commands answered")
            await asyncio.sleep(1.5)  # room for a wrong second answer to show up
        assert set(events) == set(ids)
        for order_id in ids:
            terminal = [e for e in events[order_id] if isinstance(e, TERMINAL_EVENTS)]
            # One decision per command, sent once: a kill between the broker's ack and the
            # ledger's "sent" mark is settled by reading orders.events (order_entry.eventlog).
            assert len(set(terminal)) == 1, (order_id, terminal)
            assert len(terminal) == 1, (order_id, terminal)
    finally:
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await consumer.stop()
        await producer.stop()


@pytest.mark.slow
async def test_order_entry_stops_while_redis_is_away_and_the_held_command_is_not_lost(
    stack: EmbeddedStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka.topics
    redis_server = EmbeddedRedis(name="away", log_path=tmp_path / "redis.log")
    await redis_server.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    events: dict[str, list[OrderEvent]] = {}
    collector: asyncio.Task[None] | None = None

    async def collect() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    assert isinstance(event, OrderEvent)
                    events.setdefault(event.order_id, []).append(event)

    async def send() -> str:
        order = NewOrder(
            order_id=uuid.uuid4().hex,
            account="a",
            symbol=SYMBOL,
            side="B",
            qty=1,
            limit=None,
            ts_ns=time.time_ns(),
        )
        await producer.send_and_wait(topics.orders_commands, order.encode(), key=symbol_key(SYMBOL))
        return order.order_id

    def terminal(order_id: str) -> list[OrderEvent]:
        return [e for e in events.get(order_id, []) if isinstance(e, TERMINAL_EVENTS)]

    log = tmp_path / "order_entry.log"
    try:
        quote = Quote(
            symbol=SYMBOL,
            epoch=1,
            seq=1,
            ts_ns=time.time_ns(),
            bid=10.0,
            ask=10.02,
            bid_size=1,
            ask_size=1,
        )
        await producer.send_and_wait(topics.quotes, quote.encode(), key=symbol_key(SYMBOL))
        async with order_entry(stack, kafka, log, redis_server.url) as first:
            consumer.assign([TopicPartition(topics.orders_events, p) for p in range(4)])
            collector = asyncio.create_task(collect())
            warm = await send()

            async def warm_answered() -> bool:
                return bool(terminal(warm))

            await eventually(warm_answered, timeout=30, what="order_entry to answer")
            await redis_server.stop()
            held = await send()
            await asyncio.sleep(1.0)  # order_entry has it in hand, retrying Redis
            assert not terminal(held)
            first.send_signal(signal.SIGTERM)
            # A handler that cannot finish must not keep the process from stopping.
            assert await asyncio.wait_for(first.wait(), 15) == 0
        # Redis back on the same port, empty: as after a restart without persistence.
        redis_server = EmbeddedRedis(
            name="back", log_path=tmp_path / "redis.log", port=redis_server.port
        )
        await redis_server.start()
        async with order_entry(stack, kafka, log, redis_server.url):

            async def held_answered() -> bool:
                return bool(terminal(held))

            await eventually(held_answered, timeout=40, what="the held command to be answered")
            await asyncio.sleep(1.0)  # room for a wrong second answer to show up
        assert len(terminal(held)) == 1
        assert len(terminal(warm)) == 1
    finally:
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await consumer.stop()
        await producer.stop()
        await redis_server.stop()
