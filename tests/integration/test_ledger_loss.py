"""order_entry's Redis restarted empty under a running order_entry (no append-only file).

The ledger that made duplicates harmless is gone, and so is the quote cache. Exact copies of
commands answered before get no second terminal event (the ledger is restored from
``orders.events`` before the next answer), and commands held while Redis was away are answered
against the rebuilt cache, not rejected NO_QUOTE while it refills.

Real processes: ``python -m order_entry`` on the session's broker and a Redis of the test's own,
quotes from a running publisher (whose snapshots refill the cache, as under ``marketfeed up``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.runtime.servers import EmbeddedRedis
from common.schema import OrderFilled
from common.topics import symbol_key
from tests.helpers import OrderEvents, market_buy, order_entry_process, running_publisher

SYMBOL = "AAAA"
ANSWERED = 20
HELD = 10


def command() -> tuple[str, bytes]:
    """A market buy of 1 SYMBOL: its order id and its bytes (sent again as an exact copy)."""
    order = market_buy(SYMBOL)
    return order.order_id, order.encode()


@pytest.mark.slow
async def test_redis_restarted_empty_answers_no_command_twice_and_holds_none_for_no_quote(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka.topics
    await ensure_topics(
        kafka,
        [TopicSpec(t, kafka.partitions) for t in (topics.orders_commands, topics.orders_events)],
    )
    server = EmbeddedRedis(name="lost", log_path=tmp_path / "redis.log")
    await server.start()
    try:
        async with (
            running_publisher(kafka, symbols=20, rate=200),
            AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all") as producer,
            OrderEvents(kafka) as events,
            order_entry_process(
                kafka,
                redis_url=server.url,
                redis_prefix="mf:",
                tradable=[SYMBOL],
                log=tmp_path / "order_entry.log",
            ),
        ):
            events.collect()

            async def send(raw: bytes) -> None:
                await producer.send_and_wait(topics.orders_commands, raw, key=symbol_key(SYMBOL))

            answered = [command() for _ in range(ANSWERED)]
            for _, raw in answered:
                await send(raw)
            await events.answered([i for i, _ in answered], timeout=40)

            await server.kill()  # gone, and back below with nothing: no persistence
            held = [command() for _ in range(HELD)]
            for _, raw in held:
                await send(raw)
            await asyncio.sleep(1.0)  # order_entry holds them, retrying its Redis
            server = EmbeddedRedis(name="lost", log_path=tmp_path / "redis.log", port=server.port)
            await server.start()

            for _, raw in answered:  # exact copies of commands answered before the loss
                await send(raw)
            marker, raw = command()  # same partition: answered after every copy
            await send(raw)
            await events.answered([marker, *(i for i, _ in held)], timeout=40)
            await asyncio.sleep(1.0)  # room for a wrong second answer to show up
        twice = [i for i, _ in answered if len(events.terminal(i)) != 1]
        assert not twice, f"{len(twice)} of {ANSWERED} copies got a second terminal event"
        outcomes = [events.terminal(i) for i, _ in held]
        assert all(len(t) == 1 for t in outcomes), outcomes
        rejected = [t[0] for t in outcomes if not isinstance(t[0], OrderFilled)]
        assert not rejected, f"{len(rejected)} of {HELD} held orders not filled: {rejected}"
    finally:
        await server.stop()
