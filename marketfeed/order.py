"""``marketfeed order buy|sell SYM QTY``: send one order and wait for its outcome.

Request/response over Kafka with the order id as correlation id: the events of an order are
keyed by its symbol like the command, so they land on the one partition of ``orders.events``
that holds the symbol. That partition is read from its end, positioned *before* the command is
sent so that the answer cannot be missed; events of other orders are skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.cli import EXIT_FAILURE, EXIT_OK
from common.config import add_arguments, build, positive, setting
from common.errors import ConfigError, SchemaError
from common.kafka import KafkaSettings, TopicSpec, ensure_topics, with_backoff
from common.kafkasec import connection, security_fields
from common.orderclient import SIDES, event_dict, terminal
from common.orderclient import new_order as build_order
from common.partitioner import partition_for
from common.schema import NewOrder, OrderEvent, decode
from common.schema.orders import (
    TERMINAL_EVENTS,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
)
from common.topics import symbol_key
from marketfeed.targets import BrokerSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSettings(BrokerSettings):
    limit: float | None = setting(
        None, help="limit price (immediate-or-cancel); without it a market order", check=positive
    )
    account: str = setting("cli", help="account the order is for")
    timeout: float = setting(10.0, help="seconds to wait for the outcome", check=positive)
    json: bool = setting(False, help="print the events as JSON")

    def kafka(self) -> KafkaSettings:
        """The broker and topic layout: the flags, else the running up."""
        bootstrap, topic_prefix, partitions = self.resolve_broker()
        return KafkaSettings(
            bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            partitions=partitions,
            connect_timeout=self.timeout,
            **security_fields(self.resolve_security()),
        )


async def place(order: NewOrder, kafka: KafkaSettings, timeout: float) -> list[OrderEvent]:
    """Send ``order`` and return its events up to the terminal one ([] if none in time)."""
    topics = kafka.topics
    # Creates nothing when order_entry runs; refuses a partition count that would break routing.
    await ensure_topics(
        kafka,
        [
            TopicSpec(topics.orders_commands, kafka.partitions),
            TopicSpec(topics.orders_events, kafka.partitions),
        ],
    )
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        enable_auto_commit=False,
        client_id="marketfeed-order",
        **connection(kafka),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        client_id="marketfeed-order",
        **connection(kafka),
    )
    await with_backoff(
        "order", consumer.start, bootstrap=kafka.bootstrap, timeout=timeout, security=kafka
    )
    try:
        tp = TopicPartition(topics.orders_events, partition_for(order.symbol, kafka.partitions))
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)  # resolve the end now, before the command exists
        await with_backoff(
            "order", producer.start, bootstrap=kafka.bootstrap, timeout=timeout, security=kafka
        )
        try:
            await producer.send_and_wait(
                topics.orders_commands, order.encode(), key=symbol_key(order.symbol)
            )
        finally:
            await producer.stop()
        events: list[OrderEvent] = []
        while (left := deadline - time.monotonic()) > 0:
            batches = await consumer.getmany(tp, timeout_ms=int(min(left, 0.5) * 1000))
            for record in batches.get(tp, []):
                try:
                    event = decode(record.value)
                except SchemaError:
                    continue  # not ours to judge; order_entry dead-letters what it cannot use
                if not isinstance(event, OrderEvent) or event.order_id != order.order_id:
                    continue
                events.append(event)
                if isinstance(event, TERMINAL_EVENTS):
                    return events
        return events
    finally:
        await consumer.stop()


def describe(event: OrderEvent) -> str:
    if isinstance(event, OrderAccepted):
        side = "buy" if event.side == "B" else "sell"
        return f"ACCEPTED  {side} {event.qty} {event.symbol} for {event.account}"
    if isinstance(event, OrderFilled):
        side = "bought" if event.side == "B" else "sold"
        return f"FILLED    {side} {event.qty} {event.symbol} at {event.price:.4f}"
    if isinstance(event, OrderCancelled):
        return f"CANCELLED {event.symbol}: {event.text}"
    assert isinstance(event, OrderRejected)
    return f"REJECTED  {event.symbol or '-'}: {event.reason}: {event.text}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("side", choices=sorted(SIDES), help="buy or sell")
    parser.add_argument("symbol", metavar="SYMBOL", help="symbol to trade")
    parser.add_argument("qty", metavar="QTY", help="quantity, a whole number > 0")
    add_arguments(parser, OrderSettings)


def new_order(side: str, symbol: str, qty: str, settings: OrderSettings) -> NewOrder:
    try:
        quantity = int(qty)
    except ValueError:
        raise ConfigError(f"QTY: must be a whole number, got {qty!r}") from None
    try:
        return build_order(
            side=side, symbol=symbol, qty=quantity, account=settings.account, limit=settings.limit
        )
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None


async def run(args: argparse.Namespace) -> int:
    side, symbol, qty = args.side, args.symbol, args.qty
    del args.side, args.symbol, args.qty
    settings = build(OrderSettings, args)
    order = new_order(side, symbol, qty, settings)
    sent = time.monotonic()
    events = await place(order, settings.kafka(), settings.timeout)
    elapsed_ms = (time.monotonic() - sent) * 1000
    outcome = terminal(events)
    if settings.json:
        out: dict[str, Any] = {
            "order_id": order.order_id,
            "events": [event_dict(e) for e in events],
            "timed_out": outcome is None,
            "elapsed_ms": round(elapsed_ms, 1),
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"order {order.order_id}")
        for event in events:
            print(describe(event))
        if outcome is None:
            print(f"TIMEOUT   no outcome within {settings.timeout:g}s (is order_entry running?)")
        else:
            print(f"({elapsed_ms:.0f} ms)")
    if outcome is None or isinstance(outcome, OrderRejected):
        return EXIT_FAILURE
    return EXIT_OK
