"""Two order_entry processes in one consumer group share the order flow and split the quotes.

Real processes (``python -m order_entry``) on the session's broker and Redis, a real publisher
in the test. Each process has its own quote cache (its own key prefix in Redis) and both share
one order ledger. Checked: the order partitions are split between them, each caches only the
tradable symbols of its own partitions, every order is answered once by the process that owns
its partition, and when one process leaves, the other takes its partitions and their quotes.
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
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.runtime import EmbeddedStack
from common.schema import NewOrder, decode
from common.schema.orders import TERMINAL_EVENTS, OrderEvent, OrderFilled
from common.topics import symbol_key
from feed_publisher.universe import universe
from tests.helpers import eventually, running_publisher, spawn

TRADABLE = universe(16)
ALL = frozenset(range(4))


@contextlib.asynccontextmanager
async def order_entry(
    stack: EmbeddedStack, kafka: KafkaSettings, name: str, log: Path
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
        stack.redis_url("order_entry"),
        "--redis-prefix",
        f"{kafka.topic_prefix}{name}:",
        "--ledger-prefix",
        f"{kafka.topic_prefix}ledger:",
        "--tradable",
        ",".join(TRADABLE),
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


def _text(values: object) -> set[str]:
    assert isinstance(values, set)
    return {v.decode() if isinstance(v, bytes) else str(v) for v in values}


class View:
    """What one order_entry process says in its Redis: its order partitions and its cache."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def order_partitions(self) -> frozenset[int] | None:
        raw = await self.client.hget(f"{self.prefix}orders:meta", "assigned")
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return frozenset(int(p) for p in text.split(",") if p)

    async def interest(self) -> set[str]:
        return _text(await self.client.smembers(f"{self.prefix}interest"))

    async def cached(self) -> set[str]:
        keys = _text(set(await self.client.keys(f"{self.prefix}q:*")))
        return {k.removeprefix(f"{self.prefix}q:") for k in keys}

    async def quote_partitions(self) -> frozenset[int]:
        raw = await self.client.hget(f"{self.prefix}meta", "assigned")
        text = (raw.decode() if isinstance(raw, bytes) else str(raw)) if raw else ""
        return frozenset(int(p) for p in text.split(",") if p)


def on(partitions: frozenset[int]) -> set[str]:
    return {s for s in TRADABLE if partition_for(s, 4) in partitions}


@pytest.mark.slow
async def test_two_processes_share_order_partitions_and_cache_only_their_quotes(
    stack: EmbeddedStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    client = aioredis.Redis.from_url(stack.redis_url("order_entry"))
    a = View(client, f"{kafka.topic_prefix}a:")
    b = View(client, f"{kafka.topic_prefix}b:")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    events: dict[str, list[OrderEvent]] = {}
    collector: asyncio.Task[None] | None = None

    async def collect() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    assert isinstance(event, OrderEvent)
                    events.setdefault(event.order_id, []).append(event)

    async def send_to_every_symbol() -> list[str]:
        ids = []
        for symbol in TRADABLE:
            order = NewOrder(
                order_id=uuid.uuid4().hex,
                account="scale",
                symbol=symbol,
                side="B",
                qty=1,
                limit=None,
                ts_ns=time.time_ns(),
            )
            await producer.send_and_wait(
                kafka.topics.orders_commands, order.encode(), key=symbol_key(symbol)
            )
            ids.append(order.order_id)
        return ids

    async def answered(ids: list[str]) -> None:
        async def done() -> bool:
            return all(any(isinstance(e, TERMINAL_EVENTS) for e in events.get(i, [])) for i in ids)

        await eventually(done, timeout=30, what="every order answered")

    log = tmp_path / "order_entry.log"
    await producer.start()
    await consumer.start()
    try:
        async with (
            running_publisher(kafka, symbols=40, rate=400),
            order_entry(stack, kafka, "a", log),
        ):
            started = time.monotonic()

            async def a_has_all() -> bool:
                return await a.order_partitions() == ALL

            await eventually(a_has_all, timeout=30, what="the first process to join")
            print(f"first order_entry joined and warm in {time.monotonic() - started:.1f}s")
            assert await a.interest() == set(TRADABLE)

            async with order_entry(stack, kafka, "b", log) as second:
                started = time.monotonic()

                async def split() -> bool:
                    pa, pb = await a.order_partitions(), await b.order_partitions()
                    return bool(pa and pb and pa | pb == ALL and not pa & pb)

                await eventually(split, timeout=40, what="the group to split the partitions")
                print(f"second order_entry joined in {time.monotonic() - started:.1f}s")
                pa, pb = await a.order_partitions(), await b.order_partitions()
                assert pa is not None
                assert pb is not None
                for view, parts in ((a, pa), (b, pb)):
                    assert await view.interest() == on(parts)
                    assert await view.cached() <= on(parts)
                    assert await view.quote_partitions() <= parts

                async def both_warm() -> bool:
                    return await a.cached() == on(pa) and await b.cached() == on(pb)

                await eventually(both_warm, what="each cache to hold its symbols' quotes")
                consumer.assign([TopicPartition(kafka.topics.orders_events, p) for p in range(4)])
                collector = asyncio.create_task(collect())
                ids = await send_to_every_symbol()
                await answered(ids)
                # Each answer came from a process that holds the symbol's quote: a fill.
                for order_id in ids:
                    terminal = [e for e in events[order_id] if isinstance(e, TERMINAL_EVENTS)]
                    assert len(terminal) == 1, terminal
                    assert isinstance(terminal[0], OrderFilled), terminal

                second.send_signal(signal.SIGTERM)
                await second.wait()
                started = time.monotonic()
                await eventually(a_has_all, timeout=40, what="the survivor to take over")
                print(f"survivor took every partition in {time.monotonic() - started:.1f}s")
                assert await a.interest() == set(TRADABLE)
                ids = await send_to_every_symbol()
                await answered(ids)
                for order_id in ids:
                    terminal = [e for e in events[order_id] if isinstance(e, TERMINAL_EVENTS)]
                    assert len(terminal) == 1, terminal
                    assert isinstance(terminal[0], OrderFilled), terminal
    finally:
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await consumer.stop()
        await producer.stop()
        await client.aclose()
