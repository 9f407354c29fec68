"""cancel_and_wait: a task that loses a cancellation is cancelled again, not waited on forever."""

from __future__ import annotations

import asyncio

import pytest

from common.lifecycle import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed == 0:  # as a library losing a cancellation would
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()
    assert swallowed == 1


async def test_the_error_a_task_ended_with_is_raised() -> None:
    async def failing() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    deaf = True

    async def hard_of_hearing() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not deaf:
                    raise

    task = asyncio.create_task(hard_of_hearing())
    stopper = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.1)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not task.done()  # left running by the cancelled stopper, as asked
    deaf = False
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_none_and_a_finished_task_return_at_once() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    await cancel_and_wait(task)
