"""order_entry killed (SIGKILL) mid-stream and restarted: every command still gets one decision.
And order_entry stopped while its Redis is away: it stops at once, and the command it could not
answer is answered by the next process rather than lost.

Real processes: ``python -m order_entry`` (cache + faust worker) on the session's broker and
Redis (or a Redis of the test's own), in the same consumer group across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack
from common.runtime.servers import EmbeddedRedis
from common.schema import Quote
from common.topics import symbol_key
from tests.feedkey import signed
from tests.helpers import OrderEvents, eventually, order_entry_process, send_order

SYMBOL = "AAAA"
COMMANDS = 40


def order_entry(
    kafka: KafkaSettings, redis_url: str, log: Path
) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return order_entry_process(
        kafka,
        redis_url=redis_url,
        redis_prefix=f"{kafka.topic_prefix}mf:",
        tradable=[SYMBOL],
        log=log,
        snapshot_timeout=0.5,  # no publisher: replay the quote instead
    )


@contextlib.asynccontextmanager
async def quoted_feed(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer, after one fresh quote of SYMBOL was published."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
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
        value, key = quote.encode(), symbol_key(SYMBOL)
        await producer.send_and_wait(
            kafka.topics.quotes, value, key=key, headers=signed(kafka.topics.quotes, key, value)
        )
        yield producer
    finally:
        await producer.stop()


@pytest.mark.slow
async def test_killed_and_restarted_order_entry_decides_each_command_once(
    stack: EmbeddedStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    log = tmp_path / "order_entry.log"
    redis_url = stack.redis_url("order_entry")
    async with quoted_feed(kafka) as producer, OrderEvents(kafka) as events:
        ids = [""] * COMMANDS

        def answered() -> int:
            return sum(bool(events.terminal(i)) for i in ids)

        async with order_entry(kafka, redis_url, log) as first:
            for i in range(10):
                ids[i] = await send_order(producer, kafka, SYMBOL)
            # orders.events exists once order_entry started; read it from the beginning.
            events.collect()

            async def some_answered() -> bool:
                return answered() >= 5

            await eventually(some_answered, timeout=30, what="order_entry to answer orders")
            for i in range(10, 20):
                ids[i] = await send_order(producer, kafka, SYMBOL)
            first.kill()  # SIGKILL: no clean shutdown, no final offset commit
            await first.wait()
        for i in range(20, 30):
            ids[i] = await send_order(producer, kafka, SYMBOL)
        started = time.monotonic()
        async with order_entry(kafka, redis_url, log):
            await events.answered(ids[:30], timeout=40)
            print(
                f"restarted order_entry answered its backlog in {time.monotonic() - started:.1f}s"
            )
            for i in range(30, COMMANDS):
                ids[i] = await send_order(producer, kafka, SYMBOL)
            await events.answered(ids, timeout=20)
            await asyncio.sleep(1.5)  # room for a wrong second answer to show up
        assert set(events.by_order) == set(ids)
        for order_id in ids:
            terminal = events.terminal(order_id)
            # One decision per command, sent once: a kill between the broker's ack and the
            # ledger's "sent" mark is settled by reading orders.events (order_entry.eventlog).
            assert len(terminal) == 1, (order_id, terminal)


@pytest.mark.slow
async def test_order_entry_stops_while_redis_is_away_and_the_held_command_is_not_lost(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    redis_server = EmbeddedRedis(name="away", log_path=tmp_path / "redis.log")
    await redis_server.start()
    log = tmp_path / "order_entry.log"
    try:
        async with quoted_feed(kafka) as producer, OrderEvents(kafka) as events:
            async with order_entry(kafka, redis_server.url, log) as first:
                events.collect()
                warm = await send_order(producer, kafka, SYMBOL)
                await events.answered([warm])
                await redis_server.stop()
                held = await send_order(producer, kafka, SYMBOL)
                await asyncio.sleep(1.0)  # order_entry has it in hand, retrying Redis
                assert not events.terminal(held)
                first.send_signal(signal.SIGTERM)
                # A handler that cannot finish must not keep the process from stopping.
                assert await asyncio.wait_for(first.wait(), 15) == 0
            # Redis back on the same port, empty: as after a restart without persistence.
            redis_server = EmbeddedRedis(
                name="back", log_path=tmp_path / "redis.log", port=redis_server.port
            )
            await redis_server.start()
            async with order_entry(kafka, redis_server.url, log):
                await events.answered([held], timeout=40)
                await asyncio.sleep(1.0)  # room for a wrong second answer to show up
            assert len(events.terminal(held)) == 1
            assert len(events.terminal(warm)) == 1
    finally:
        await redis_server.stop()
