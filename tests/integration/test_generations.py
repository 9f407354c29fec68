"""Topic generations against the real broker and Redis: rolls, deletions, restarts, readers.

Small generations (a roll every fraction of a second) so that every test crosses several.
The whole history is read by ``tests/history.py``, written from the README's rule alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.cache import CachingConsumer
from common.cache.reader import QuoteReader
from common.config import to_argv, to_env
from common.generations.naming import Generations
from common.kafka import KafkaSettings, ensure_topics, market_data_topics
from common.runtime import EmbeddedStack
from common.schema import Quote, Trade, decode
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from feed_publisher.roller import mark
from feed_publisher.universe import universe
from marketfeed.lag.monitor import LagMonitor
from marketfeed.lag.rules import PartitionLag
from marketfeed.targets import Target
from order_entry.config import OrderEntryConfig
from tests.feedkey import FEED_KEY
from tests.helpers import eventually, publish_for, publisher_config, spawn
from tests.history import History, read_history
from tests.integration.test_cache import (
    SeqMonitor,
    cache_settings,
    cached_raw,
    last_values_on_topic,
    truth,
)

SYMBOLS = 200
INTEREST = universe(SYMBOLS)[::10]  # 20 symbols spread over the partitions
SERVICE = "order_entry"


def feed_config(kafka: KafkaSettings, **extra: object) -> PublisherConfig:
    """Generations rolled every 0.6 s (or as ``extra`` says)."""
    settings: dict[str, Any] = {"md_history": "generations", "roll_seconds": 0.6, **extra}
    return publisher_config(kafka, symbols=SYMBOLS, seed=3, **settings)


def order_entry_config(kafka: KafkaSettings, redis_url: str, prefix: str) -> OrderEntryConfig:
    return OrderEntryConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=redis_url,
        redis_prefix=prefix,
        tradable=tuple(INTEREST),
        log_level="WARNING",
    )


async def generations_on(kafka: KafkaSettings, base: str) -> Generations:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        return Generations.from_names(base, await admin.list_topics())
    finally:
        await admin.close()


def check_exactly_once(history: History) -> int:
    """Every market-data message of the history once per partition, its sequence numbers
    going up by one per (type, symbol, epoch) with no gap; how many there were."""
    last: dict[tuple[type, str, int], int] = {}
    seen = 0
    for records in history.records.values():
        for read in records:
            message = decode(read.value)
            assert isinstance(message, (Quote, Trade))
            key = (type(message), message.symbol, message.epoch)
            assert message.seq == last.get(key, 0) + 1, f"{key}: {last.get(key)} -> {message.seq}"
            last[key] = message.seq
            seen += 1
    return seen


async def test_three_rollovers_every_record_once_caches_equal_lag_sane_old_deleted(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str
) -> None:
    config = feed_config(kafka)
    monitor = SeqMonitor()
    redis_url = stack.redis_url(SERVICE)
    target = Target(
        service=SERVICE,
        bootstrap=kafka.bootstrap,
        redis_url=redis_url,
        redis_prefix=prefix,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
    )
    lag_rows: list[PartitionLag] = []
    stopped = asyncio.Event()
    async with Publisher(config) as publisher:
        # The independent reader follows from generation 1, before anything is deleted.
        readers = {
            base: asyncio.create_task(
                read_history(kafka.bootstrap, base, kafka.partitions, stopped=stopped)
            )
            for base in kafka.topics.market_data
        }
        stop = asyncio.Event()
        running = asyncio.create_task(publisher.run(stop))
        cache = CachingConsumer(
            cache_settings(kafka, redis_url, prefix),
            service=SERVICE,
            interest=INTEREST,
            on_applied=monitor,
        )
        async with cache, LagMonitor([target]) as lag:
            # At least one look, however many rolls a busy machine made while it started.
            while not lag_rows or publisher.stats().rolls < 4:
                [report] = await lag.update()
                lag_rows.extend(report.lag.partitions)
                await asyncio.sleep(0.1)
            stop.set()
            await running
            await publisher.sink.flush()
            assert publisher.roller is not None
            await publisher.roller.delete_old()  # what the last roll started, done
            await eventually(
                lambda: _equal(redis_url, prefix, truth(publisher, INTEREST)),
                what="the cache to equal the publisher's last values",
            )
            [report] = await lag.update()
            assert report.lag.offset_lag == 0  # caught up, across every generation it crossed
            # The roller creates the next generation's topics ahead of the roll (in the
            # background): stopped in between, that one exists, empty, unread by anyone.
            assert report.newest in (publisher.generation, publisher.generation + 1)
            assert set(report.generations.values()) == {publisher.generation}
        stopped.set()
        histories = {base: await task for base, task in readers.items()}
    stats = publisher.stats()
    assert stats.rolls >= 4
    assert stats.deleted >= stats.rolls - 1
    assert stats.delete_failures == 0
    # Only the generations kept are left on the broker.
    for base in kafka.topics.market_data:
        found = await generations_on(kafka, base)
        kept = (stats.generation - 1, stats.generation)
        assert found.numbers in (kept, (*kept, stats.generation + 1))  # + one created ahead
    # Every record once, in order, and one marker per partition per roll.
    records = sum(check_exactly_once(h) for h in histories.values())
    markers = sum(len(m) for h in histories.values() for m in h.markers.values())
    assert markers == stats.rolls * kafka.partitions * len(histories)
    assert records + markers == stats.acked
    assert monitor.regressions == []
    assert set(await cached_raw(redis_url, prefix)) <= set(INTEREST)
    # Lag as the monitor counts it never went below the cache's own position.
    assert lag_rows
    for row in lag_rows:
        applied = -1 if row.applied_offset is None else row.applied_offset
        assert row.high_watermark >= applied + 1
        assert row.offset_lag >= 0


async def _equal(redis_url: str, prefix: str, want: dict[str, bytes]) -> bool:
    return await cached_raw(redis_url, prefix) == want


async def test_a_cache_killed_mid_rollover_restarts_equal_to_the_truth_without_regression(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str
) -> None:
    redis_url = stack.redis_url(SERVICE)
    config = order_entry_config(kafka, redis_url, prefix)
    argv = [sys.executable, "-m", "order_entry", *to_argv(config)]
    env = {**os.environ, **to_env(config)}  # its Redis URL, as `up` gives it
    reader = QuoteReader.from_url(redis_url, prefix=prefix)
    # Generations kept while the cache is down, so that it resumes from where it stood (a
    # deleted one is the paused cache's test).
    feed = feed_config(kafka, roll_seconds=0.3, keep_generations=50)
    async with Publisher(feed) as publisher:
        stop = asyncio.Event()
        running = asyncio.create_task(publisher.run(stop))
        first = await spawn(*argv, env=env)
        try:
            await eventually(lambda: _rolled_past(reader, 2), what="the cache to cross a roll")
            # Every symbol cached: a restart then needs no snapshot, only its positions.
            await eventually(lambda: _all_cached(redis_url, prefix), what="every symbol cached")
            # Killed while its partitions stand in different generations, if caught there.
            await _mid_rollover(reader)
            first.kill()
            assert await first.wait() == -signal.SIGKILL
            before = await _versions(reader, INTEREST)
            second = await spawn(*argv, env=env)
            try:
                later = publisher.generation + 1
                await eventually(lambda: _rolled_past(reader, later), what="a roll after")
                stop.set()
                await running
                await publisher.sink.flush()
                await eventually(
                    lambda: _equal(redis_url, prefix, truth(publisher, INTEREST)),
                    what="the restarted cache to equal the truth",
                )
                after = await _versions(reader, INTEREST)
                assert (await reader.meta())["start"] == "resume"
            finally:
                second.send_signal(signal.SIGTERM)
                assert await second.wait() == 0
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
            await reader.aclose()
    assert publisher.stats().rolls >= 3
    assert all(after[s] >= before[s] for s in before), (before, after)


async def _all_cached(redis_url: str, prefix: str) -> bool:
    return set(await cached_raw(redis_url, prefix)) == set(INTEREST)


async def _rolled_past(reader: QuoteReader, generation: int) -> bool:
    states = await reader.partitions()
    return bool(states) and min(s.generation for s in states.values()) >= generation


async def _mid_rollover(reader: QuoteReader) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while loop.time() < deadline:
        states = await reader.partitions()
        if len({s.generation for s in states.values()}) > 1:
            return
        await asyncio.sleep(0.002)


async def _versions(reader: QuoteReader, symbols: Iterable[str]) -> dict[str, tuple[int, int]]:
    cached = await reader.get_many(symbols)
    return {s: (c.quote.epoch, c.quote.seq) for s, c in cached.items() if c is not None}


@pytest.mark.parametrize("marked", ["every partition", "some partitions"])
async def test_a_publisher_stopped_between_its_markers_and_the_next_generation_is_continued(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str, marked: str
) -> None:
    """The first publisher rolls and stops before writing anything to the new generation (or
    after marking only some partitions): the next one closes what was left open and starts a
    generation of its own; a cache that read throughout ends equal, with no regression."""
    redis_url = stack.redis_url(SERVICE)
    monitor = SeqMonitor()
    cache = CachingConsumer(
        cache_settings(kafka, redis_url, prefix),
        service=SERVICE,
        interest=INTEREST,
        on_applied=monitor,
    )
    config = feed_config(kafka, roll_seconds=60.0)
    async with Publisher(config) as first:
        await publish_for(first, 0.6)
        assert first.roller is not None
        if marked == "every partition":
            await first.roller.roll()  # its markers, and nothing in the new generation
        else:
            await half_a_roll(first, kafka)
        await first.sink.flush()
        async with cache:
            await asyncio.sleep(0.5)
            async with Publisher(config) as second:
                assert second.generation == 3
                await publish_for(second, 0.6)
                await eventually(
                    lambda: _equal(redis_url, prefix, _last_of(first, second)),
                    what="the cache to equal the last values of both publishers",
                )
    assert monitor.regressions == []
    history = await read_history(kafka.bootstrap, kafka.topics.quotes, kafka.partitions)
    # One chain per partition from generation 1 to the second publisher's.
    for partition, markers in history.markers.items():
        assert [m.topic.rsplit(".g", 1)[1] for m in markers] == ["1", "2"], partition
    check_exactly_once(history)


async def half_a_roll(publisher: Publisher, kafka: KafkaSettings) -> None:
    """What a publisher killed half-way through a roll leaves: generation 2 created, and the
    markers of only two partitions of generation 1 handed over."""
    await ensure_topics(kafka, market_data_topics(kafka, 2))
    for base in kafka.topics.market_data:
        mark(
            publisher.sink,
            base=base,
            generation=1,
            following=2,
            partitions=range(2),
            epoch=publisher.epoch,
        )


def _last_of(first: Publisher, second: Publisher) -> dict[str, bytes]:
    return {**truth(first, INTEREST), **truth(second, INTEREST)}


async def test_a_cache_started_in_the_middle_of_a_rollover_follows_it(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str
) -> None:
    """Half of the partitions marked, the other half not yet, and no publisher to answer a
    snapshot: the cache replays from the oldest generation, across the markers that are
    there, and follows the rest once a publisher writes them."""
    redis_url = stack.redis_url(SERVICE)
    config = feed_config(kafka, roll_seconds=60.0, snapshots=False)
    async with Publisher(config) as first:
        await publish_for(first, 0.5)
        await half_a_roll(first, kafka)
        await first.sink.flush()
    settings = cache_settings(kafka, redis_url, prefix)
    async with CachingConsumer(settings, service=SERVICE, interest=INTEREST) as cache:
        assert cache.start_mode == "replay"
        want = await last_values_on_topic(kafka, INTEREST)
        await eventually(
            lambda: _equal(redis_url, prefix, want),
            what="the cache to replay the first publisher's values",
        )
        assert {p.generation for p in cache.positions.values()} == {1, 2}
        async with Publisher(config) as second:
            await publish_for(second, 0.5)
        want = await last_values_on_topic(kafka, INTEREST)
        await eventually(
            lambda: _equal(redis_url, prefix, want), what="the cache to follow the second publisher"
        )
        assert {p.generation for p in cache.positions.values()} == {second.generation}


async def test_a_cache_paused_for_longer_than_two_generations_resnapshots(
    stack: EmbeddedStack, kafka: KafkaSettings, prefix: str, tmp_path: Path
) -> None:
    redis_url = stack.redis_url(SERVICE)
    config = order_entry_config(kafka, redis_url, prefix)
    log_path = tmp_path / "order_entry.log"
    reader = QuoteReader.from_url(redis_url, prefix=prefix)
    async with Publisher(feed_config(kafka, roll_seconds=0.3)) as publisher:
        stop = asyncio.Event()
        running = asyncio.create_task(publisher.run(stop))
        with log_path.open("wb") as out:
            proc = await spawn(
                sys.executable,
                "-m",
                "order_entry",
                *to_argv(config),
                stdout=out,
                stderr=out,
                env={**os.environ, **to_env(config)},
            )
        try:
            await eventually(lambda: _rolled_past(reader, 2), what="the cache to follow")
            paused_at = publisher.generation
            proc.send_signal(signal.SIGSTOP)
            await eventually(
                lambda: _deleted(publisher, paused_at + 1), what="its generation deleted"
            )
            proc.send_signal(signal.SIGCONT)
            await eventually(lambda: _stat(reader, "lost_generations"), what="a re-snapshot")
            await eventually(lambda: _rolled_past(reader, publisher.generation))
            stop.set()
            await running
            await publisher.sink.flush()
            await eventually(lambda: _equal(redis_url, prefix, truth(publisher, INTEREST)))
            lost = (await reader.stats()).get("lost_generations", 0)
        finally:
            stop.set()
            await running
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
            await reader.aclose()
    lines = log_path.read_text().splitlines()
    said = [line for line in lines if "was deleted before it was read to its end" in line]
    # One line per loss, not one per check while it lasts. The pause is one loss; on a busy
    # machine a cache catching up through generations of 0.3 s can lose another: each is said.
    assert 1 <= len(said) == lost, (lost, said)


async def _deleted(publisher: Publisher, generations: int) -> bool:
    return publisher.stats().deleted >= generations


async def _stat(reader: QuoteReader, name: str) -> bool:
    return (await reader.stats()).get(name, 0) >= 1
