"""The pieces that decide when a command counts as done: the window, fail-stop, dead letters."""

from __future__ import annotations

import asyncio
import functools

import pytest

from common.cache.deadletters import MAX_VALUE_BYTES, DeadLetterSink
from common.errors import ProcessingFailed
from common.faustapp import FailStop
from common.lifecycle import first_of
from order_entry.inflight import Pending, Window


async def test_window_acks_in_arrival_order_after_settling() -> None:
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("a", "b")}

    async def settle(pending: Pending) -> None:
        assert pending.order_id is not None
        order.append(f"settle {pending.order_id}")
        await release[pending.order_id].wait()

    async with Window(size=4, settle=settle) as window:
        for name in ("a", "b"):
            await window.put(
                Pending(
                    ack=functools.partial(order.append, f"ack {name}"), partition=0, order_id=name
                )
            )
        release["b"].set()  # b's events are stored first, but a was first in line
        await asyncio.sleep(0.01)
        assert order == ["settle a"]
        release["a"].set()
        await asyncio.wait_for(window.drained(), 1)
    assert order == ["settle a", "ack a", "settle b", "ack b"]


async def test_a_copy_waits_for_the_order_id_in_the_window() -> None:
    gate = asyncio.Event()

    async def settle(pending: Pending) -> None:
        await gate.wait()

    async with Window(size=4, settle=settle) as window:
        await window.put(Pending(ack=lambda: None, partition=0, order_id="x"))
        copy = asyncio.create_task(window.wait_for("x"))
        await asyncio.sleep(0.01)
        assert not copy.done()
        gate.set()
        await asyncio.wait_for(copy, 1)
        await window.wait_for("never-seen")  # not in the window: at once


async def test_a_failing_settle_is_reported_and_nothing_more_is_acked() -> None:
    acked: list[int] = []
    failures: list[BaseException] = []

    async def settle(pending: Pending) -> None:
        if pending.partition == 1:
            raise RuntimeError("boom")

    window = Window(size=4, settle=settle)
    await window.start()
    window.on_failure(failures.append)
    for partition in (0, 1, 2):
        await window.put(
            Pending(ack=functools.partial(acked.append, partition), partition=partition)
        )
    await asyncio.sleep(0.05)
    await window.stop()
    assert acked == [0]
    assert [str(f) for f in failures] == ["boom"]


async def test_fail_stop_parks_the_work_and_tells_the_service() -> None:
    fail_stop = FailStop("test processor")

    async def broken() -> None:
        raise KeyError("unplanned")

    guarded = asyncio.create_task(fail_stop.guard(broken()))
    with pytest.raises(ProcessingFailed, match="test processor stopped"):
        await asyncio.wait_for(fail_stop.wait(), 1)
    assert not guarded.done()  # parked: the event in hand is never acked
    guarded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await guarded


async def test_first_of_ends_with_the_first_and_cancels_the_rest() -> None:
    never = asyncio.Event()

    async def fails() -> None:
        raise ProcessingFailed("gone")

    with pytest.raises(ProcessingFailed, match="gone"):
        await asyncio.wait_for(first_of(never.wait(), fails()), 1)


def test_dead_letter_of_a_huge_value_is_truncated_and_says_where_the_original_is() -> None:
    sink = DeadLetterSink(None, topic="dlq.x", service="x")
    letter = sink.letter(
        source_topic="orders.commands",
        partition=3,
        offset=42,
        key=b"k",
        value=b"v" * (MAX_VALUE_BYTES + 10),
        reason="not msgpack",
    )
    assert letter.value is not None
    assert len(letter.value) == MAX_VALUE_BYTES
    assert letter.reason.startswith("not msgpack (value truncated from")
    assert "orders.commands[3]@42" in letter.reason
    small = sink.letter(
        source_topic="t", partition=0, offset=1, key=None, value=b"abc", reason="bad"
    )
    assert (small.value, small.reason) == (b"abc", "bad")
    # What a broker with the default 1 MiB limit accepted is kept whole.
    whole = b"w" * 900_000
    large = sink.letter(source_topic="t", partition=0, offset=1, key=None, value=whole, reason="x")
    assert (large.value, large.reason) == (whole, "x")
