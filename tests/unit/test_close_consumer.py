"""close_consumer: a Kafka consumer's stop is bounded, and what it did not close is closed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from common.kafka import close_consumer


class _Closable:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_a_consumer_whose_stop_hangs_is_closed_all_the_same() -> None:
    stuck = asyncio.Event()
    coordination = asyncio.create_task(stuck.wait())  # aiokafka's group task, never ending
    fetcher, client = _Closable(), _Closable()

    async def stop() -> None:
        await coordination  # what aiokafka's stop() does first with a group_id

    consumer: Any = SimpleNamespace(
        stop=stop,
        _coordinator=SimpleNamespace(_coordination_task=coordination),
        _fetcher=fetcher,
        _client=client,
    )
    await asyncio.wait_for(close_consumer(consumer, timeout=0.05), 2)
    assert coordination.cancelled()
    assert fetcher.closed
    assert client.closed


async def test_a_consumer_that_stops_is_left_alone_after_stop() -> None:
    stopped: list[bool] = []
    client = _Closable()

    async def stop() -> None:
        stopped.append(True)

    consumer: Any = SimpleNamespace(stop=stop, _client=client)
    await close_consumer(consumer, timeout=1)
    assert stopped == [True]
    assert not client.closed  # stop() closed it; nothing is done twice


async def test_a_cancellation_raised_by_aiokafka_itself_is_not_taken_for_ours() -> None:
    """aiokafka's no-group stop() right after start() raises the CancelledError of its own task."""
    fetcher, client = _Closable(), _Closable()

    async def stop() -> None:
        raise asyncio.CancelledError  # as NoGroupCoordinator.close() re-raises it

    consumer: Any = SimpleNamespace(stop=stop, _coordinator=None, _fetcher=fetcher, _client=client)
    await close_consumer(consumer, timeout=1)
    assert fetcher.closed
    assert client.closed


async def test_a_cancelled_close_is_still_cancelled() -> None:
    entered = asyncio.Event()

    async def stop() -> None:
        entered.set()
        await asyncio.Event().wait()

    consumer: Any = SimpleNamespace(stop=stop, _client=_Closable())
    closing = asyncio.create_task(close_consumer(consumer, timeout=10))
    await entered.wait()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing


async def test_a_fetcher_whose_close_raises_its_own_cancellation_is_closed_all_the_same() -> None:
    """aiokafka's Fetcher.close() awaits fetch tasks it has just cancelled: one that was in its
    retry backoff (a broker gone) raises CancelledError out of close() and the rest stay."""

    async def backoff() -> None:
        await asyncio.sleep(60)

    pending = [asyncio.create_task(backoff()) for _ in range(3)]
    await asyncio.sleep(0)

    class Fetcher:
        _pending_tasks = pending

        async def close(self) -> None:
            for task in self._pending_tasks:
                task.cancel()
                await task  # raises at the first one, as aiokafka's does

    client = _Closable()

    async def stop() -> None:
        await Fetcher().close()

    consumer: Any = SimpleNamespace(
        stop=stop, _coordinator=None, _fetcher=Fetcher(), _client=client
    )
    await asyncio.wait_for(close_consumer(consumer, timeout=1), 5)
    assert all(task.cancelled() for task in pending)
    assert client.closed
