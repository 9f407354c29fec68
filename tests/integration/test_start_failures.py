"""A start that fails at any step leaves nothing open, and says why in one line.

Every aiokafka client the code under test makes is tracked, and the Nth client start is made
to fail: whatever had been started before it, and the client itself, must be stopped by the
time ``start()`` has raised. An unstopped aiokafka client keeps its connections and warns when
it is collected, long after the test that leaked it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

import common.cache.parts
import common.cache.snapshots
import common.kafka
import common.watermarks
import feed_publisher.closing
import feed_publisher.publisher
import feed_publisher.snapshot
import order_entry.eventlog
from common.cache import CacheSettings, CachingConsumer
from common.config import to_argv, to_env
from common.errors import CacheUnavailableError
from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack
from common.runtime.process import free_port
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from order_entry.config import OrderEntryConfig
from order_entry.eventlog import EventLog
from portfolio.config import PortfolioConfig
from tests.feedkey import FEED_KEY
from tests.helpers import communicate, spawn

_MODULES = (
    common.kafka,
    common.watermarks,
    common.cache.parts,
    common.cache.snapshots,
    feed_publisher.closing,
    feed_publisher.publisher,
    feed_publisher.snapshot,
    order_entry.eventlog,
)


class _Injected(Exception):
    """The failure a test puts in a start (not an error any retry loop waits out)."""


class Clients:
    """Every aiokafka producer and consumer made while installed; start number ``fail_at``
    (counting from 1, over all of them) raises instead of connecting."""

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.starts = 0
        self.made: list[Any] = []

    def tracked(self, base: type[Any]) -> type[Any]:
        clients = self

        class Tracked(base):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.stopped = False
                clients.made.append(self)

            async def start(self) -> None:
                clients.starts += 1
                if clients.starts == clients.fail_at:
                    raise _Injected(f"start #{clients.starts} fails")
                await super().start()

            async def stop(self) -> None:
                self.stopped = True
                await super().stop()

        return Tracked

    @property
    def left_open(self) -> list[str]:
        return [type(c).__mro__[1].__name__ for c in self.made if not c.stopped]


@pytest.fixture
def clients(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Clients:
    tracker = Clients(getattr(request, "param", None))
    classes: dict[type[Any], type[Any]] = {}
    for module in _MODULES:
        for name in ("AIOKafkaConsumer", "AIOKafkaProducer"):
            base = getattr(module, name, None)
            if isinstance(base, type):
                tracked = classes.setdefault(base, tracker.tracked(base))
                monkeypatch.setattr(module, name, tracked)
    return tracker


def _publisher_config(kafka: KafkaSettings, md_history: str = "retention") -> PublisherConfig:
    return PublisherConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        symbols=20,
        connect_timeout=5.0,
        md_history=md_history,
    )


# Retention: the publisher's producer, then its snapshot responder's watermark reader, request
# consumer and reply producer. Before: a failure from #2 on left the publisher's producer open,
# #4 the responder's consumer too, and from #2 the responder's reply producer (made unstarted,
# but stopped only with a consumer). Generations (a fresh broker prefix, nothing to close): the
# producer, the responder's consumer and reply producer; closing older generations adds the
# reader of their ends, tested below.
@pytest.mark.parametrize(
    ("clients", "md_history"),
    [
        *((n, "retention") for n in (1, 2, 3, 4)),
        *((n, "generations") for n in (1, 2, 3)),
    ],
    indirect=["clients"],
)
async def test_a_publisher_start_failing_at_any_client_leaves_none_open(
    kafka: KafkaSettings, clients: Clients, md_history: str
) -> None:
    publisher = Publisher(_publisher_config(kafka, md_history))
    with pytest.raises(_Injected):
        await publisher.start()
    assert clients.made, "nothing was started"
    assert clients.left_open == []
    await publisher.stop()  # and stop() after a failed start is harmless


@pytest.mark.parametrize(("md_history", "starts"), [("retention", 4), ("generations", 3)])
async def test_a_publisher_started_and_stopped_leaves_none_open(
    kafka: KafkaSettings, clients: Clients, md_history: str, starts: int
) -> None:
    async with Publisher(_publisher_config(kafka, md_history)) as publisher:
        assert publisher.responder is not None
    assert clients.starts == starts
    assert clients.left_open == []
    await publisher.stop()


async def test_a_restarted_publisher_closing_old_generations_leaves_none_open(
    kafka: KafkaSettings, clients: Clients
) -> None:
    async with Publisher(_publisher_config(kafka, "generations")):
        pass
    clients.fail_at = clients.starts + 2  # the second publisher's reader of generation ends
    with pytest.raises(_Injected):
        await Publisher(_publisher_config(kafka, "generations")).start()
    assert clients.left_open == []


def _cache_settings(kafka: KafkaSettings, redis_url: str, **extra: Any) -> CacheSettings:
    return CacheSettings(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=redis_url,
        redis_prefix=f"{kafka.topic_prefix}c:",
        snapshot_timeout=0.3,
        **extra,
    )


# The cache's dead-letter producer, its quote consumer, its snapshot reply consumer. Before: a
# consumer whose own start failed was never stopped, nor the snapshot client's on a later step.
@pytest.mark.parametrize("clients", [1, 2, 3], indirect=True)
async def test_a_cache_start_failing_at_any_client_leaves_none_open(
    stack: EmbeddedStack, kafka: KafkaSettings, clients: Clients
) -> None:
    cache = CachingConsumer(
        _cache_settings(kafka, stack.redis_url("order_entry")), service="t", interest=["AAAA"]
    )
    with pytest.raises(_Injected):
        await cache.start()
    assert clients.left_open == []
    await cache.stop()


async def test_a_cache_whose_redis_never_answers_gives_up_in_one_line_without_its_password(
    kafka: KafkaSettings, clients: Clients
) -> None:
    port = free_port()
    settings = _cache_settings(
        kafka, f"redis://:s3cret@127.0.0.1:{port}/0?password=s3cret", connect_timeout=1.0
    )
    cache = CachingConsumer(settings, service="t", interest=["AAAA"])
    with pytest.raises(CacheUnavailableError) as failed:
        await cache.start()
    message = str(failed.value)
    where = rf"redis://:\*\*\*@127\.0\.0\.1:{port}/0\?password=\*\*\*"
    assert re.match(rf"cannot reach Redis at {where} after \d+s: ", message)
    assert "s3cret" not in message
    assert "\n" not in message
    assert clients.starts == 3  # Kafka first: every client was up when Redis failed
    assert clients.left_open == []


@pytest.mark.parametrize("clients", [1], indirect=True)
async def test_an_event_log_whose_reader_fails_to_start_closes_it(
    kafka: KafkaSettings, clients: Clients
) -> None:
    with pytest.raises(_Injected):
        await EventLog(kafka, client_id="t").start()
    assert clients.left_open == []


async def test_a_start_cancelled_half_way_leaves_none_open(
    kafka: KafkaSettings, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop signal while the responder waits on the broker: what was started is stopped."""
    reached = asyncio.Event()

    async def hangs(*_args: Any, **_kwargs: Any) -> dict[Any, int]:
        reached.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(common.watermarks.WatermarkReader, "high_watermarks", hangs)
    starting = asyncio.create_task(Publisher(_publisher_config(kafka)).start())
    await asyncio.wait_for(reached.wait(), 30)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert clients.starts == 2  # the publisher's producer and the watermark reader
    assert clients.left_open == []


@pytest.mark.parametrize(
    ("service", "config"),
    [
        ("portfolio", PortfolioConfig),
        ("order_entry", partial(OrderEntryConfig, tradable=("AAAA",))),
    ],
)
async def test_a_service_whose_redis_never_answers_says_so_in_one_line_and_exits_1(
    kafka: KafkaSettings, service: str, config: Callable[..., Any]
) -> None:
    port = free_port()
    settings = config(
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        redis_url=f"redis://:s3cret@127.0.0.1:{port}/0",
        connect_timeout=1.0,
        feed_key=FEED_KEY,
    )
    proc = await spawn(
        sys.executable,
        "-m",
        service,
        *to_argv(settings),
        env={**os.environ, **to_env(settings)},  # the Redis URL and feed key, as `up` gives them
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await communicate(proc)
    text = err.decode()
    assert proc.returncode == 1, text
    lines = [line for line in text.splitlines() if line.startswith(f"{service}:")]
    assert len(lines) == 1, text
    where = rf"redis://:\*\*\*@127\.0\.0\.1:{port}/0"
    expected = rf"{service}: cannot reach Redis at {where} after \d+s: "
    assert re.match(expected, lines[0]), lines[0]
    assert "Traceback" not in text
    assert "s3cret" not in text
