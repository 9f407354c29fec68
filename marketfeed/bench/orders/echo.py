"""The baseline of ``marketfeed bench orders``: a bare echo of ``orders.commands``.

``python -m marketfeed.bench.orders.echo --bootstrap HOST:PORT --topic-prefix P``: an aiokafka
consume -> produce loop that answers every command with an OrderFilled-shaped event on
``orders.events`` (same key, so the same partition), without Redis, validation, ledger or
consumer group: every command partition is assigned manually, so it serves at once. What it
measures is what the broker, the client library and this machine give an order flow; the
benchmark runs order_entry beside it at the same rates, on topics of its own.

Each fetched batch is answered in one go: every event is handed to the producer, then all
acknowledgements are awaited before the next fetch (acks=all, as order_entry sends).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.cli import OneLineParser, run_async
from common.config import add_arguments, build, known_log_level, positive, setting
from common.errors import SchemaError
from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.lifecycle import Lifecycle, cancel_and_wait
from common.logs import setup_logging
from common.schema.codec import SCHEMA_VERSION, pack, unpack
from common.schema.orders import ORDER_FILLED_TYPE
from common.service import serve
from marketfeed.bench.core.clients import open_consumer, open_producer

PROG = "marketfeed.bench.orders.echo"
log = logging.getLogger(__name__)

# The fill price of every echo: the figure is the round trip, not a price.
_PRICE = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoConfig(KafkaSettings):
    fetch_max_wait_ms: int = setting(
        5, help="longest a fetch of commands waits for data", check=positive
    )
    log_level: str = setting("WARNING", help="log level", check=known_log_level)


def echo_of(command: bytes, now_ns: int) -> bytes | None:
    """An OrderFilled-shaped answer to ``command``; None if it has no order id to answer."""
    try:
        _, raw = unpack(command)
    except SchemaError:
        return None
    order_id = raw.get("order_id")
    if not isinstance(order_id, str):
        return None
    return pack(
        {
            "v": SCHEMA_VERSION,
            "type": ORDER_FILLED_TYPE,
            "order_id": order_id,
            "symbol": raw.get("symbol", ""),
            "ts_ns": now_ns,
            "account": raw.get("account", ""),
            "side": raw.get("side", "B"),
            "qty": raw.get("qty", 1),
            "price": _PRICE,
        }
    )


class EchoService(Lifecycle):
    def __init__(self, config: EchoConfig) -> None:
        self.config = config
        self.topics = config.topics
        self.answered = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        c = self.config
        await ensure_topics(
            c,
            [
                TopicSpec(self.topics.orders_commands, c.partitions),
                TopicSpec(self.topics.orders_events, c.partitions),
            ],
        )
        self._producer = await open_producer(
            self.resources,
            bootstrap=c.bootstrap,
            client_id="bench-echo",
            connect_timeout=c.connect_timeout,
        )
        self._consumer = consumer = await open_consumer(
            self.resources,
            bootstrap=c.bootstrap,
            client_id="bench-echo",
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            connect_timeout=c.connect_timeout,
        )
        tps = [TopicPartition(self.topics.orders_commands, p) for p in range(c.partitions)]
        consumer.assign(tps)
        # From the beginning, as order_entry's group starts: commands sent before it was up
        # are answered too.
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(), name="echo")
        self.resources.push_async_callback(cancel_and_wait, self._task)

    async def _run(self) -> None:
        consumer, producer = self._consumer, self._producer
        assert consumer is not None
        assert producer is not None
        events = self.topics.orders_events
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time_ns()
            futures = []
            for records in batches.values():
                for record in records:
                    answer = echo_of(record.value, now) if record.value else None
                    if answer is not None:
                        futures.append(await producer.send(events, answer, key=record.key))
            if futures:
                await asyncio.gather(*futures)
                self.answered += len(futures)

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Stop the loop, then the clients. Safe to call twice."""
        await super().stop()
        self._task = self._consumer = self._producer = None
        log.info("echo stopped after %d answers", self.answered)


async def run(args: argparse.Namespace) -> int:
    config = build(EchoConfig, args)
    setup_logging(config.log_level)
    service = EchoService(config)
    return await serve(service, service.wait)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="Answer every order command with a fill.")
    add_arguments(parser, EchoConfig)
    args = parser.parse_args(argv)
    return run_async(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
