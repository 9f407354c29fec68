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
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.runtime import EmbeddedStack
from common.schema.orders import OrderFilled
from feed_publisher.universe import universe
from tests.helpers import (
    OrderEvents,
    eventually,
    order_entry_process,
    running_publisher,
    send_order,
)

TRADABLE = universe(16)
ALL = frozenset(range(4))


def order_entry(
    stack: EmbeddedStack, kafka: KafkaSettings, name: str, log: Path
) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return order_entry_process(
        kafka,
        redis_url=stack.redis_url("order_entry"),
        redis_prefix=f"{kafka.topic_prefix}{name}:",
        tradable=TRADABLE,
        log=log,
        ledger_prefix=f"{kafka.topic_prefix}ledger:",
    )


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


# A bound for a failing test: three group changes, each waiting on the embedded broker's
# session timeouts, took up to 50 s under the suite's own load.
@pytest.mark.timeout(150)
@pytest.mark.slow
async def test_two_processes_share_order_partitions_and_cache_only_their_quotes(
    stack: EmbeddedStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    client = aioredis.Redis.from_url(stack.redis_url("order_entry"))
    a = View(client, f"{kafka.topic_prefix}a:")
    b = View(client, f"{kafka.topic_prefix}b:")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")

    async def every_symbol_filled_once() -> None:
        ids = [await send_order(producer, kafka, symbol) for symbol in TRADABLE]
        await events.answered(ids)
        # Each answer came from a process that holds the symbol's quote: a fill.
        for order_id in ids:
            terminal = events.terminal(order_id)
            assert len(terminal) == 1, terminal
            assert isinstance(terminal[0], OrderFilled), terminal

    log = tmp_path / "order_entry.log"
    await producer.start()
    try:
        async with (
            OrderEvents(kafka) as events,
            running_publisher(kafka, symbols=40, rate=400),
            order_entry(stack, kafka, "a", log),
        ):
            started = time.monotonic()

            async def a_has_all() -> bool:
                return await a.order_partitions() == ALL

            await eventually(a_has_all, timeout=60, what="the first process to join")
            print(f"first order_entry joined and warm in {time.monotonic() - started:.1f}s")
            assert await a.interest() == set(TRADABLE)
            events.collect()

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
                await every_symbol_filled_once()

                second.send_signal(signal.SIGTERM)
                await second.wait()
                started = time.monotonic()
                await eventually(a_has_all, timeout=40, what="the survivor to take over")
                print(f"survivor took every partition in {time.monotonic() - started:.1f}s")
                assert await a.interest() == set(TRADABLE)
                await every_symbol_filled_once()
    finally:
        await producer.stop()
        await client.aclose()
