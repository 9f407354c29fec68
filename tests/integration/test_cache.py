"""The caching consumer against the real broker and Redis: equal to the truth, only its symbols."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

import msgpack
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.cache import CacheSettings, CachingConsumer
from common.cache.batch import PreparedBatch
from common.cache.reader import QuoteReader
from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.runtime import EmbeddedRedis, EmbeddedStack
from common.schema import DeadLetter, Quote, decode_as, quote_wire
from feed_publisher.publisher import Publisher
from feed_publisher.universe import universe
from tests.feedkey import FEED_KEY, signed
from tests.helpers import eventually, running_publisher, spawn
from tests.history import read_history

SYMBOLS = 200
INTEREST = universe(SYMBOLS)[::10]  # 20 symbols spread over the partitions


def cache_settings(
    kafka: KafkaSettings, redis_url: str, prefix: str, **extra: object
) -> CacheSettings:
    return CacheSettings(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=redis_url,
        redis_prefix=prefix,
        **{"snapshot_timeout": 2.0, **extra},  # type: ignore[arg-type]
    )


async def cached_raw(redis_url: str, prefix: str) -> dict[str, bytes]:
    """Every quote key in the cache: symbol -> raw bytes."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        out: dict[str, bytes] = {}
        async for key in client.scan_iter(match=f"{prefix}q:*", count=1000):
            value = await client.get(key)
            assert isinstance(value, bytes)
            out[key.decode().removeprefix(f"{prefix}q:")] = value
        return out
    finally:
        await client.aclose()


def truth(publisher: Publisher, symbols: list[str]) -> dict[str, bytes]:
    """The last acknowledged quote of each symbol, byte for byte, as the publisher knows it."""
    assert publisher.responder is not None
    latest = publisher.responder.latest
    return {s: latest[s.encode()] for s in symbols if s.encode() in latest}


async def caught_up(
    cache: CachingConsumer, publisher: Publisher, redis_url: str, prefix: str
) -> None:

    async def equal() -> bool:
        # The publisher's last values are read at each look: one asked to stop may still be
        # acknowledging its last batch (a loaded machine), and the cache must equal those.
        return await cached_raw(redis_url, prefix) == truth(publisher, INTEREST)

    await eventually(equal, what="the cache to equal the publisher's last values")


class SeqMonitor:
    """Records every quote a cache applies and fails on any sequence regression."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, int]] = {}
        self.regressions: list[str] = []
        self.applied = 0

    def __call__(self, batch: PreparedBatch, _applied_ns: int) -> None:
        for symbol, (quote, _) in batch.quotes.items():
            version = (quote.epoch, quote.seq)
            if symbol in self.last and version <= self.last[symbol]:
                self.regressions.append(f"{symbol}: {self.last[symbol]} -> {version}")
            self.last[symbol] = version
            self.applied += 1


@pytest.fixture
def redis_url(stack: EmbeddedStack) -> str:
    return stack.redis_url("order_entry")


@pytest.fixture
def rprefix(prefix: str) -> str:
    return f"{prefix}oe:"


async def test_cache_holds_exactly_its_symbols_equal_to_the_publisher(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    async with running_publisher(kafka, symbols=SYMBOLS, rate=4000) as (publisher, stop):
        settings = cache_settings(kafka, redis_url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST) as cache:
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.sleep(0.2)
            await caught_up(cache, publisher, redis_url, rprefix)
            cached = await cached_raw(redis_url, rprefix)
            assert set(cached) == set(INTEREST)  # no key for any other symbol
            expected_parts = {partition_for(s, kafka.partitions) for s in INTEREST}
            assert cache.assigned_partitions == expected_parts
            assert cache.counts["filtered"] > 0  # other symbols were skipped by key
            assert cache.counts["dead_letters"] == 0
    assert publisher.stats().acked > 3000


async def test_cold_start_fills_from_snapshot_then_follows(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    async with running_publisher(kafka, symbols=SYMBOLS, rate=3000) as (publisher, stop):
        await asyncio.sleep(1.0)
        settings = cache_settings(kafka, redis_url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST) as cache:
            # Right after start, before consuming anything: the snapshot's values are there.
            assert cache.start_mode == "snapshot"
            assert cache.counts["snapshot_quotes"] == len(truth(publisher, INTEREST)) > 0
            assert len(await cached_raw(redis_url, rprefix)) == cache.counts["snapshot_quotes"]
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.sleep(0.2)
            await caught_up(cache, publisher, redis_url, rprefix)


async def test_without_a_snapshot_answer_it_replays_from_the_beginning(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    async with running_publisher(kafka, symbols=SYMBOLS, rate=3000, snapshots=False) as (_, stop):
        await asyncio.sleep(0.5)
        stop.set()
        settings = cache_settings(kafka, redis_url, rprefix, snapshot_timeout=0.5)
        async with CachingConsumer(settings, service="oe", interest=INTEREST) as cache:
            assert cache.start_mode == "replay"
            # Truth read from the topic itself, since this publisher keeps no snapshot state.
            want = await last_values_on_topic(kafka, INTEREST)
            await eventually(
                lambda: _equals(redis_url, rprefix, want), what="replayed cache to equal the topic"
            )


async def _equals(redis_url: str, prefix: str, want: dict[str, bytes]) -> bool:
    return await cached_raw(redis_url, prefix) == want


async def last_values_on_topic(kafka: KafkaSettings, symbols: list[str]) -> dict[str, bytes]:
    """The last quote of each of ``symbols`` on the quotes topic, across its generations (a
    stopped feed, whose last roll may have been cut short)."""
    history = await read_history(
        kafka.bootstrap, kafka.topics.quotes, kafka.partitions, strict=False
    )
    wanted = {s.encode() for s in symbols}
    return {r.key.decode(): r.value for r in history.all() if r.key in wanted}


async def test_stopped_and_restarted_cache_resumes_without_regression(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    monitor = SeqMonitor()
    async with running_publisher(kafka, symbols=SYMBOLS, rate=4000) as (publisher, stop):
        settings = cache_settings(kafka, redis_url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST, on_applied=monitor):
            await asyncio.sleep(0.8)
        applied_before = monitor.applied
        await asyncio.sleep(0.8)  # the feed goes on while the cache is down
        async with CachingConsumer(
            settings, service="oe", interest=INTEREST, on_applied=monitor
        ) as cache:
            assert cache.start_mode == "resume"
            assert cache.counts["snapshots"] == 0  # every symbol was cached: no snapshot needed
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.sleep(0.2)
            await caught_up(cache, publisher, redis_url, rprefix)
    assert applied_before > 0
    assert monitor.applied > applied_before
    assert monitor.regressions == []


async def test_cache_killed_with_sigkill_restarts_equal_to_the_truth(
    stack: EmbeddedStack, kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
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
        redis_url,
        "--redis-prefix",
        rprefix,
        "--tradable",
        ",".join(INTEREST),
        "--log-level",
        "WARNING",
    ]
    env = {**os.environ, "MARKETFEED_FEED_KEY": FEED_KEY}  # a secret: never on the command line
    async with running_publisher(kafka, symbols=SYMBOLS, rate=4000) as (publisher, stop):
        first = await spawn(*argv, env=env)
        try:
            reader = QuoteReader.from_url(redis_url, prefix=rprefix)
            # Every symbol cached: a restart then needs no snapshot, only its stored offsets.
            await eventually(
                lambda: _all_cached(redis_url, rprefix), what="the first cache to fill"
            )
            os.kill(first.pid, signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
            stats_at_kill = await reader.stats()
            await asyncio.sleep(0.5)
            second = await spawn(*argv, env=env)
            try:
                await asyncio.sleep(1.0)
                stop.set()
                await asyncio.sleep(0.2)
                want = truth(publisher, INTEREST)
                await eventually(
                    lambda: _equals(redis_url, rprefix, want),
                    what="the restarted cache to equal the truth",
                )
                assert (await reader.meta())["start"] == "resume"
                # At the kill the cache may hold only its snapshot (nothing applied yet).
                applied_at_kill = stats_at_kill.get("applied", 0)
                assert (await reader.stats()).get("applied", 0) > applied_at_kill
            finally:
                second.send_signal(signal.SIGTERM)
                assert await second.wait() == 0
            await reader.aclose()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()


async def _all_cached(redis_url: str, prefix: str) -> bool:
    return set(await cached_raw(redis_url, prefix)) == set(INTEREST)


async def test_interest_follows_changes_snapshot_in_evict_out(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    count = kafka.partitions
    first = INTEREST[0]
    # A symbol alone in its partition among the interest, to see the partition released.
    alone = next(
        s
        for s in universe(SYMBOLS)
        if partition_for(s, count) not in {partition_for(x, count) for x in INTEREST[:3]}
    )
    async with running_publisher(kafka, symbols=SYMBOLS, rate=3000) as (publisher, stop):
        await asyncio.sleep(0.8)
        settings = cache_settings(kafka, redis_url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST[:3]) as cache:
            snapshots = cache.counts["snapshots"]
            await cache.add_interest(alone)
            assert cache.counts["snapshots"] == snapshots + 1
            assert alone in await cached_raw(redis_url, rprefix)  # filled by the snapshot at once
            assert partition_for(alone, count) in cache.assigned_partitions
            reader = QuoteReader.from_url(redis_url, prefix=rprefix)
            assert alone in await reader.interest()

            await cache.remove_interest(alone, first)
            cached = await cached_raw(redis_url, rprefix)
            assert alone not in cached
            assert first not in cached
            assert partition_for(alone, count) not in cache.assigned_partitions
            assert await reader.interest() == frozenset(INTEREST[1:3])
            await reader.aclose()
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.sleep(0.2)
            want = truth(publisher, INTEREST[1:3])
            await eventually(
                lambda: _equals(redis_url, rprefix, want), what="the remaining symbols"
            )


async def test_bad_records_go_to_the_dead_letter_topic_and_the_cache_goes_on(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    symbol = INTEREST[0]
    key = symbol.encode()
    part = partition_for(symbol, kafka.partitions)
    crossed = msgpack.packb(quote_wire(symbol, 1, 1, 1, 101.0, 100.0, 1, 1))
    wrong_version = msgpack.packb({**quote_wire(symbol, 1, 1, 1, 100.0, 101.0, 1, 1), "v": 99})
    good = Quote(symbol=symbol, epoch=1, seq=5, ts_ns=1, bid=10.0, ask=10.5, bid_size=1, ask_size=1)
    bad = [
        (key, b"\xc1 not msgpack", "not a msgpack message"),
        # A dead letter keeps the original bytes, a large value too (the README's promise).
        (key, b"\xc1" + b"x" * 900_000, "not a msgpack message"),
        (key, wrong_version, "unsupported schema version 99"),
        (key, crossed, "crossed quote"),
        (b"bad sym!", good.encode(), "is not a symbol"),
    ]
    settings = cache_settings(kafka, redis_url, rprefix)
    async with CachingConsumer(settings, service="oe", interest=[symbol]) as cache:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            for k, v, _ in bad:
                await producer.send_and_wait(kafka.topics.quotes, v, key=k, partition=part)
            value = good.encode()
            await producer.send_and_wait(
                kafka.topics.quotes,
                value,
                key=key,
                partition=part,
                headers=signed(kafka.topics.quotes, key, value),
            )
        finally:
            await producer.stop()
        await eventually(
            lambda: _is_cached(redis_url, rprefix, symbol, good.encode()),
            what="the good quote after the bad ones",
        )
        assert cache.counts["dead_letters"] == len(bad)
    letters = await read_dead_letters(kafka, "oe", len(bad))
    assert [(d.key, d.value) for d in letters] == [(k, v) for k, v, _ in bad]
    for letter, (_, _, reason) in zip(letters, bad, strict=True):
        assert reason in letter.reason
        assert letter.topic == kafka.topics.quotes
        assert letter.partition == part
    assert [d.offset for d in letters] == sorted(d.offset for d in letters)


async def _is_cached(redis_url: str, prefix: str, symbol: str, value: bytes) -> bool:
    return (await cached_raw(redis_url, prefix)).get(symbol) == value


async def read_dead_letters(kafka: KafkaSettings, service: str, count: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(kafka.topics.dead_letter(service), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[DeadLetter] = []
        async with asyncio.timeout(10):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(decode_as(r.value or b"", DeadLetter) for r in records)
        return out
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def own_redis() -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(name="restartable")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_redis_restarted_under_a_running_cache_is_rebuilt(
    kafka: KafkaSettings, rprefix: str
) -> None:
    async with (
        own_redis() as server,
        running_publisher(kafka, symbols=SYMBOLS, rate=3000) as (
            publisher,
            stop,
        ),
    ):
        settings = cache_settings(kafka, server.url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST) as cache:
            await asyncio.sleep(0.5)
            await server.stop()
            await asyncio.sleep(1.0)  # the cache keeps its position and retries meanwhile
            restarted = EmbeddedRedis(name="restartable", port=server.port)
            await restarted.start()
            try:
                await eventually(lambda: _rebuilt(cache), what="the cache to rebuild")
                stop.set()
                await asyncio.sleep(0.2)
                await caught_up(cache, publisher, restarted.url, rprefix)
                assert cache.counts["redis_errors"] > 0
            finally:
                await restarted.stop()


async def _rebuilt(cache: CachingConsumer) -> bool:
    return cache.counts["rebuilds"] >= 1


async def test_restart_with_a_smaller_interest_evicts_what_is_no_longer_wanted(
    kafka: KafkaSettings, redis_url: str, rprefix: str
) -> None:
    async with running_publisher(kafka, symbols=SYMBOLS, rate=3000) as (publisher, stop):
        await asyncio.sleep(0.5)
        settings = cache_settings(kafka, redis_url, rprefix)
        async with CachingConsumer(settings, service="oe", interest=INTEREST):
            await asyncio.sleep(0.3)
        kept = INTEREST[:1]
        async with CachingConsumer(settings, service="oe", interest=kept) as cache:
            assert set(await cached_raw(redis_url, rprefix)) <= set(kept)
            reader = QuoteReader.from_url(redis_url, prefix=rprefix)
            assert set(await reader.partitions()) == {partition_for(kept[0], kafka.partitions)}
            await reader.aclose()
            stop.set()
            await asyncio.sleep(0.2)
            want = truth(publisher, kept)
            await eventually(lambda: _equals(redis_url, rprefix, want), what="the one symbol kept")
            assert cache.assigned_partitions == {partition_for(kept[0], kafka.partitions)}
