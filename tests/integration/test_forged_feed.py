"""The signed feed end to end: forged market data, written by an attacker's own producer next
to a running publisher, never reaches order_entry's cache nor fills an order.

One running set-up (a signed publisher, order_entry with its cache and order processor) is
shared by every forged case: each is written with plain aiokafka, as an attacker on the host
would, and must come back as a dead letter with its reason, while the real feed goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.cache.reader import QuoteReader
from common.feedsign import FeedKeys
from common.generations.naming import generation_topic
from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.runtime import EmbeddedStack
from common.schema import (
    ROLLOVER_KEY,
    DeadLetter,
    OrderFilled,
    Quote,
    Rollover,
    SnapshotReply,
    SnapshotRequest,
    decode_as,
    decode_quote,
)
from common.topics import symbol_key
from feed_publisher.universe import universe
from order_entry.config import OrderEntryConfig
from order_entry.service import OrderEntryService
from tests.feedkey import FEED_KEY, signed
from tests.helpers import OrderEvents, eventually, market_buy, running_publisher

SYMBOLS = 16
FORGED_BID, FORGED_ASK = 1.00, 1.01  # far better than any real price: a fill here is the bug
HOUR_NS = 3600 * 10**9
DAY_MS = 86_400_000
# A forged seq this far ahead of the publisher's is the newest of its fetch, however far behind
# a loaded machine leaves the cache (the feed is ~25/s a symbol; a fetch holds seconds of it).
AHEAD = 5000


@dataclass(frozen=True, slots=True)
class Forgery:
    case: str
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str  # expected in the dead letter's reason
    symbol: str | None = None  # the symbol whose cache it aims at


def forged_quote(symbol: str, *, epoch: int, seq: int, ts_ns: int | None = None) -> bytes:
    return Quote(
        symbol=symbol,
        epoch=epoch,
        seq=seq,
        ts_ns=ts_ns or time.time_ns(),
        bid=FORGED_BID,
        ask=FORGED_ASK,
        bid_size=1,
        ask_size=1,
    ).encode()


def forgeries(kafka: KafkaSettings, generation: int, real: dict[str, Quote]) -> list[Forgery]:
    """Every forged case of issue #12, one symbol each (``real``: their cached quotes)."""
    base = kafka.topics.quotes
    topic = generation_topic(base, generation)
    s = iter(sorted(real))
    out: list[Forgery] = []

    def quote_case(case: str, reason: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        symbol = decode_quote(value).symbol
        out.append(
            Forgery(
                case,
                topic,
                partition_for(symbol, kafka.partitions),
                symbol_key(symbol),
                value,
                headers,
                reason,
                symbol,
            )
        )

    def sign(symbol: str, value: bytes) -> list[tuple[str, bytes]]:
        return signed(base, symbol_key(symbol), value)  # as with a stolen key

    now_ms = time.time_ns() // 1_000_000
    a = next(s)
    quote_case(
        "newer epoch (a publisher start now), unsigned",
        "unsigned",
        forged_quote(a, epoch=now_ms, seq=1),
        [],
    )
    b = next(s)
    v = forged_quote(b, epoch=now_ms + DAY_MS, seq=1)
    quote_case("epoch a day ahead, signed with a stolen key", "implausible: epoch", v, sign(b, v))
    c = next(s)
    v = forged_quote(
        c, epoch=real[c].epoch, seq=real[c].seq + AHEAD, ts_ns=time.time_ns() + HOUR_NS
    )
    quote_case("ts_ns an hour ahead, signed with a stolen key", "implausible: ts_ns", v, sign(c, v))
    d = next(s)
    v = forged_quote(d, epoch=real[d].epoch, seq=real[d].seq + 1_000_000)
    quote_case(
        "seq a million ahead, signed with a stolen key", "implausible: seq jumps", v, sign(d, v)
    )
    e = next(s)
    v = forged_quote(e, epoch=real[e].epoch, seq=real[e].seq + AHEAD)
    quote_case("next seq, unsigned", "unsigned", v, [])
    f = next(s)
    v = forged_quote(f, epoch=real[f].epoch, seq=real[f].seq + AHEAD)
    other = FeedKeys((uuid.uuid4().bytes * 2,)).signer().headers(base, symbol_key(f), v)
    quote_case("next seq, signed with another key", "signed with an unknown key", v, other)
    g = next(s)
    honest = replace(real[g], seq=real[g].seq + AHEAD, ts_ns=time.time_ns()).encode()
    v = forged_quote(g, epoch=real[g].epoch, seq=real[g].seq + AHEAD)
    quote_case("value altered under a real signature", "bad signature", v, sign(g, honest))
    h = next(s)
    partition = partition_for(h, kafka.partitions)
    marker = Rollover(
        topic=base,
        generation=generation,
        next_generation=generation + 1000,
        next_topic=generation_topic(base, generation + 1000),
        partition=partition,
        epoch=real[h].epoch,
        ts_ns=time.time_ns(),
    ).encode()
    out.append(
        Forgery(
            "rollover marker to a generation the attacker made",
            topic,
            partition,
            ROLLOVER_KEY,
            marker,
            [],
            "rollover marker refused: unsigned",
            h,
        )
    )
    i = next(s)
    reply = SnapshotReply(
        request_id="forged",
        epoch=real[i].epoch,
        part=0,
        parts=1,
        quotes=(forged_quote(i, epoch=real[i].epoch, seq=real[i].seq + AHEAD),),
        offsets=((partition_for(i, kafka.partitions), 0),),
    ).encode()
    out.append(
        Forgery(
            "snapshot reply",
            kafka.topics.snapshot_replies("order_entry"),
            0,
            b"forged",
            reply,
            [],
            "snapshot reply refused: unsigned",
            i,
        )
    )
    return out


@contextlib.asynccontextmanager
async def dead_letters(kafka: KafkaSettings) -> AsyncIterator[list[DeadLetter]]:
    """Every dead letter order_entry writes, collected in the background."""
    letters: list[DeadLetter] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()

    async def collect() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                letters.extend(decode_as(r.value or b"", DeadLetter) for r in records)

    try:
        consumer.assign([TopicPartition(kafka.topics.dead_letter("order_entry"), 0)])
        task = asyncio.create_task(collect())
        try:
            yield letters
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await consumer.stop()


@pytest.mark.timeout(150)  # one shared set-up for every case; a loaded machine is slow to start
async def test_no_forged_quote_reaches_the_cache_or_fills_an_order(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str
) -> None:
    symbols = universe(SYMBOLS)
    config = OrderEntryConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=stack.redis_url("order_entry"),
        redis_prefix=f"{prefix}mf:",
        stale_after=30.0,
        session_timeout=2.0,  # a join waits about half of it on the embedded broker
    )
    # No roll while the forgeries are read: each is written into the generation being read.
    async with (
        running_publisher(
            kafka, symbols=SYMBOLS, rate=400, roll_seconds=600.0, roll_batches=1_000_000
        ) as (publisher, _),
        OrderEntryService(config, tradable=symbols) as service,
        QuoteReader.from_url(config.redis_url, prefix=config.redis_prefix) as reader,
        dead_letters(kafka) as letters,
        OrderEvents(kafka) as events,
    ):

        async def all_cached() -> bool:
            return all(v is not None for v in (await reader.get_many(symbols)).values())

        await eventually(all_cached, what="every symbol in the cache")
        # The publisher's last acknowledged quotes: the cache may be behind them.
        assert publisher.responder is not None
        real = {s: decode_quote(publisher.responder.latest[symbol_key(s)]) for s in symbols}
        cases = forgeries(kafka, publisher.generation, real)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        try:
            sent = {}
            for f in cases:
                meta = await producer.send_and_wait(
                    f.topic, f.value, key=f.key, partition=f.partition, headers=f.headers
                )
                sent[(f.topic, f.partition, meta.offset)] = f
            # A request for a signed reply on the quotes topic itself: refused, never answered.
            confused = SnapshotRequest(
                request_id="AAAA", reply_to=kafka.topics.quotes, symbols=(symbols[0],)
            )
            await producer.send_and_wait(kafka.topics.snapshot_requests, confused.encode())

            def letter_of(f: Forgery) -> DeadLetter | None:
                for letter in letters:
                    if sent.get((letter.topic, letter.partition, letter.offset)) is f:
                        return letter
                return None

            async def all_dead() -> bool:
                return all(letter_of(f) is not None for f in cases)

            await eventually(all_dead, timeout=30, what="a dead letter for every forgery")
            for f in cases:
                letter = letter_of(f)
                assert letter is not None, f.case
                assert f.reason in letter.reason, (f.case, letter.reason)
                assert letter.value == f.value

            # An order on a symbol forged at a far better ask fills at the real one.
            target = cases[2].symbol
            assert target is not None
            events.collect()
            order = market_buy(target)
            await producer.send_and_wait(
                kafka.topics.orders_commands, order.encode(), key=symbol_key(target)
            )
            await events.answered([order.order_id])
        finally:
            await producer.stop()
        (outcome,) = events.terminal(order.order_id)
        assert isinstance(outcome, OrderFilled), outcome
        assert outcome.price != FORGED_ASK

        # The real feed goes on for every symbol, past every forged seq; nothing forged was
        # ever cached, and the partition of the forged marker never left its generation.
        async def moved_on() -> bool:
            now = await reader.get_many(symbols)
            return all(q is not None and q.quote.seq > real[s].seq + 10 for s, q in now.items())

        await eventually(moved_on, timeout=30, what="the real feed going on for every symbol")
        for s, cached in (await reader.get_many(symbols)).items():
            assert cached is not None
            quote = cached.quote
            assert quote.epoch == publisher.epoch, s
            assert quote.ask != FORGED_ASK, s
            assert quote.seq < real[s].seq + AHEAD, s  # never moved to a forged version
            assert quote.ts_ns <= time.time_ns()
        marked = cases[7]
        assert service.cache.positions[marked.partition].generation == publisher.generation
        assert publisher.responder is not None
        assert publisher.responder.requests_rejected == 1
        print(f"forged cases tried: {len(cases)}, got through: 0")
