"""The publisher and a broker that stalls: frozen (SIGSTOP) while it sends or deletes.

Each test freezes a broker of its own: the session's is shared by the other tests running in
parallel, and its watch fails any test while it does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.config import to_argv, to_env
from common.generations.naming import Generations
from common.runtime import EmbeddedBroker
from common.schema import Quote, Trade, decode
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from tests.feedkey import FEED_KEY
from tests.helpers import eventually, spawn
from tests.history import read_history


@contextlib.asynccontextmanager
async def own_broker() -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    await broker.start()
    try:
        yield broker
    finally:
        if broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker.pid, signal.SIGCONT)
        await broker.kill()


@contextlib.contextmanager
def frozen(broker: EmbeddedBroker) -> Iterator[None]:
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


def config_on(broker: EmbeddedBroker, **extra: object) -> PublisherConfig:
    return PublisherConfig(
        feed_key=FEED_KEY,
        **{
            "bootstrap": broker.bootstrap,
            "partitions": 4,
            "symbols": 50,
            "rate": 2000.0,
            "seed": 5,
            "md_history": "generations",
            "roll_seconds": 0.5,
            "stall_after": 0.5,
            **extra,
        },  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("request_timeout_ms", [None, 800])
async def test_the_publisher_rides_out_a_frozen_broker_and_its_sequences_go_on(
    caplog: pytest.LogCaptureFixture, request_timeout_ms: int | None
) -> None:
    """Frozen for ~2 s. By default a request waits as long as --connect-timeout, so the broker
    answers it when it is back and nothing is written twice; with a request timeout shorter
    than the freeze, sends time out and are sent again, and a batch whose acknowledgement was
    lost is written twice (readers drop an (epoch, seq) they have)."""
    caplog.set_level(logging.INFO)
    async with own_broker() as broker:
        # Every generation kept, so that the whole history can be read at the end.
        config = config_on(
            broker,
            connect_timeout=60.0,
            keep_generations=50,
            request_timeout_ms=request_timeout_ms,
        )
        async with Publisher(config) as publisher:
            stop = asyncio.Event()
            running = asyncio.create_task(publisher.run(stop))
            await asyncio.sleep(0.8)
            with frozen(broker):
                await eventually(lambda: _dropping(publisher), what="the publisher to drop")
                await asyncio.sleep(1.2)  # past the 0.8 s request timeout of the second case
            held = publisher.stats().held
            await eventually(lambda: _acknowledged(publisher), what="the backlog to go out")
            await asyncio.sleep(0.6)
            stop.set()
            await running  # no error: it rode the stall out
            await publisher.sink.flush()
        stats = publisher.stats()
        histories = [
            await read_history(broker.bootstrap, base, 4) for base in ("md.quotes", "md.trades")
        ]
    assert held > 0
    assert stats.dropped > 0
    assert stats.failed == 0  # nothing that was handed to the sink was lost
    assert stats.held == 0
    assert stats.rolls >= 2
    # Sequence numbers go on: per (type, symbol, epoch) one after the other, no gap; a record
    # read again is a copy of one read before (a resent batch), never an older one.
    last: dict[tuple[type, str, int], int] = {}
    seen: dict[tuple[type, str, int, int], bytes] = {}
    copies = 0
    for history in histories:
        for read in history.all():
            message = decode(read.value)
            assert isinstance(message, (Quote, Trade))
            key = (type(message), message.symbol, message.epoch)
            if message.seq <= last.get(key, 0):
                assert seen[(*key, message.seq)] == read.value
                copies += 1
                continue
            assert message.seq == last.get(key, 0) + 1, (key, last.get(key), message.seq)
            last[key] = message.seq
            seen[(*key, message.seq)] = read.value
    # One line per change of state: dropping, publishing again; and with timed-out sends,
    # the broker unavailable, then back. The freeze is one such change; a busy machine may
    # add more (no acknowledgement for the test's 0.5 s --stall-after is a stall too), so
    # the lines must alternate, each state said once on entering it, never repeated.
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    _assert_alternate(lines, "dropping", "publishing again", at_least=1)
    _assert_alternate(
        lines,
        "unavailable during",
        "available again after",
        at_least=0 if request_timeout_ms is None else 1,
    )
    if request_timeout_ms is None:
        # Requests wait out the freeze: nothing timed out, nothing written twice.
        assert not [line for line in lines if "unavailable during" in line], lines
        assert copies == 0


def _assert_alternate(lines: list[str], entered: str, left: str, *, at_least: int) -> None:
    said = [
        entered if entered in line else left for line in lines if entered in line or left in line
    ]
    assert said == [entered, left] * (len(said) // 2), (entered, left, lines)
    assert len(said) // 2 >= at_least, (entered, left, lines)


async def _dropping(publisher: Publisher) -> bool:
    return publisher.stats().dropped > 0


async def _acknowledged(publisher: Publisher) -> bool:
    return not publisher.sink.stalled and publisher.stats().held < 200


async def test_the_publisher_gives_up_after_connect_timeout_with_one_line_naming_why() -> None:
    async with own_broker() as broker:
        config = config_on(broker, connect_timeout=1.5)
        argv = [sys.executable, "-m", "feed_publisher", *to_argv(config)]
        proc = await spawn(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **to_env(config)},
        )
        try:
            await eventually(lambda: _has_generation(broker), what="the publisher to publish")
            await asyncio.sleep(0.5)
            with frozen(broker):
                _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = err.decode()
    assert proc.returncode == 1, text
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"feed_publisher: Kafka at {broker.bootstrap} acknowledged nothing"), (
        text
    )
    assert "(--connect-timeout)" in last
    assert "Traceback" not in text
    assert "never retrieved" not in text


async def _has_generation(broker: EmbeddedBroker) -> bool:
    return bool(await _generations(broker))


async def test_a_deletion_that_fails_is_counted_and_done_after_the_next_roll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with own_broker() as broker:
        config = config_on(broker, request_timeout_ms=500, keep_generations=2)
        async with Publisher(config) as publisher:
            roller = publisher.roller
            assert roller is not None
            await roller.roll()
            await roller.roll()  # generation 3: generation 1 is to be deleted
            await publisher.sink.flush()  # a generation with records held is never deleted
            with frozen(broker):
                await roller.delete_old()
            assert roller.delete_failures == 1
            assert roller.deleted == 0
            # A request that timed out may still be carried out: the broker had it.
            await eventually(roller.roll, what="a roll once the broker is back")
            await publisher.sink.flush()
            await roller.delete_old()
            assert roller.deleted == 2  # generations 1 and 2, each counted once
            assert await _generations(broker) == (3, 4)
    failed = [r.getMessage() for r in caplog.records if "could not delete" in r.getMessage()]
    assert len(failed) == 1
    assert "trying again after the next roll" in failed[0]


async def _generations(broker: EmbeddedBroker) -> tuple[int, ...]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        return Generations.from_names("md.quotes", await admin.list_topics()).numbers
    finally:
        await admin.close()
