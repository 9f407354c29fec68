"""common.lifecycle: the start guard and the resources a part closes on stop."""

from __future__ import annotations

import asyncio

import pytest

from common.lifecycle import Lifecycle, cancel_all, uninterrupted


class _Part(Lifecycle):
    def __init__(self, *, fail_after: int | None = None, hang: bool = False) -> None:
        self.closed: list[str] = []
        self.fail_after = fail_after
        self.hang = hang

    async def _start(self) -> None:
        for opened, name in enumerate(("producer", "consumer", "task")):
            if opened == self.fail_after:
                raise OSError(f"cannot open the {name}")
            self.resources.callback(self.closed.append, name)
        if self.hang:
            await asyncio.Event().wait()


async def test_stop_closes_in_reverse_order_and_is_safe_twice() -> None:
    part = _Part()
    async with part:
        assert part.closed == []
    assert part.closed == ["task", "consumer", "producer"]
    await part.stop()
    assert part.closed == ["task", "consumer", "producer"]


@pytest.mark.parametrize("fail_after", [0, 1, 2])
async def test_a_failed_start_closes_what_it_opened(fail_after: int) -> None:
    part = _Part(fail_after=fail_after)
    with pytest.raises(OSError, match="cannot open"):
        await part.start()
    assert part.closed == ["producer", "consumer", "task"][:fail_after][::-1]


async def test_a_start_cancelled_half_way_closes_what_it_opened() -> None:
    part = _Part(hang=True)
    starting = asyncio.create_task(part.start())
    await asyncio.sleep(0.01)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert part.closed == ["task", "consumer", "producer"]


async def test_stop_before_start_does_nothing() -> None:
    await _Part().stop()


async def test_cancel_all_ends_every_task_and_hides_their_errors() -> None:
    async def fails() -> None:
        raise ValueError("own error")

    async def runs() -> None:
        await asyncio.Event().wait()

    tasks = {asyncio.create_task(fails()), asyncio.create_task(runs())}
    await asyncio.sleep(0)
    await cancel_all(tasks)
    assert all(t.done() for t in tasks)


class _SlowToClose(Lifecycle):
    """Hangs in its start; its stop takes longer than cancel_and_wait waits between cancels."""

    def __init__(self, close_s: float) -> None:
        self.close_s = close_s
        self.closed = False

    async def _start(self) -> None:
        self.resources.push_async_callback(self._close)
        await asyncio.Event().wait()

    async def _close(self) -> None:
        await asyncio.sleep(self.close_s)
        self.closed = True


async def test_a_cancelled_start_closes_everything_though_cancelled_again_meanwhile() -> None:
    part = _SlowToClose(close_s=0.3)
    starting = asyncio.create_task(part.start())
    await asyncio.sleep(0.05)
    starting.cancel()
    await asyncio.sleep(0.05)  # in its stop now
    starting.cancel()  # as cancel_and_wait does every second
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert part.closed


async def test_uninterrupted_work_ends_then_the_cancellation_is_raised() -> None:
    done: list[str] = []

    async def work() -> str:
        await asyncio.sleep(0.2)
        done.append("work")
        return "result"

    task = asyncio.create_task(uninterrupted(work()))
    await asyncio.sleep(0.05)
    for _ in range(3):
        task.cancel()
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["work"]
    assert await uninterrupted(work()) == "result"
