"""Interrupting a test that is stuck, so that it unwinds and the run goes on.

pytest-timeout raises its failure from a SIGALRM handler, in whatever frame the main thread is
in: usually the event loop's ``select``, which leaves the test's task pending with none of its
``async with`` blocks exited (child processes, consumers and producers left running into the
next tests), or inside an asyncio callback, whose exception the loop logs and drops (a CI run
then hung for 90 minutes). So the first interruption of an async test cancels the test's task
instead: it unwinds through its own clean-up and fails with "Timeout: <reason>". Every later one
(the alarm re-fires) raises the failure directly, in case the unwinding is stuck too.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import signal
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

INTERRUPT_SIGNAL = signal.SIGUSR1
_REAP_TIMEOUT_S = 5.0

Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class RunningTest:
    """The test in its call phase, set and cleared by hooks in the main thread."""

    def __init__(self) -> None:
        self.nodeid: str | None = None
        self._code: CodeType | None = None
        self._fired = 0
        self._posted = "stuck"
        self._loop: asyncio.AbstractEventLoop | None = None
        self.interruptions = 0  # in the whole session
        self.failures = 0  # call phases that failed, in the whole session

    def begin(self, item: pytest.Item) -> None:
        obj = getattr(item, "obj", None)
        function = inspect.unwrap(obj) if callable(obj) else None
        self._code = getattr(function, "__code__", None)
        self._fired = 0
        self.nodeid = item.nodeid

    def end(self, *, failed: bool = False) -> None:
        """The call phase is over. After an interruption or a failure, clear up what the test
        left behind.

        An interrupted test can leave tasks it started (a half-started client's, say) pending
        in the session's loop, and a failed one objects it never closed (an assertion skips
        the rest of its body): they are cancelled and collected now, so that what they report
        goes with the failure they came from, not to some later test that did nothing wrong.
        """
        interrupted, loop = self._fired > 0, self._loop
        self.nodeid, self._code, self._loop = None, None, None
        if failed:
            self.failures += 1
        if not (interrupted or failed):
            return
        if loop is not None and not loop.is_running() and not loop.is_closed():
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel("the test that started it was interrupted")
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=_REAP_TIMEOUT_S))
        gc.collect()

    def post(self, reason: str) -> None:
        """From another thread: interrupt the running test in the main thread, for ``reason``."""
        self._posted = reason
        os.kill(os.getpid(), INTERRUPT_SIGNAL)

    def on_posted(self, _signum: int, _frame: FrameType | None) -> None:
        self.interrupt(self._posted)

    def interrupt(self, reason: str) -> None:
        """Called in the main thread (a signal handler). Outside a test's call phase: ignored."""
        if self.nodeid is None:
            return
        self._fired += 1
        self.interruptions += 1
        message = f"Timeout: {reason}"
        task = self._test_task() if self._fired == 1 else None
        if task is None:
            pytest.fail(message, pytrace=False)
        # To the real stderr, past pytest's capture: a rerun that passes would hide it, and a
        # run that was slowed by a stuck test should say where it was stuck.
        print(f"\n{self.nodeid}: {message}; cancelling the test.", file=sys.__stderr__)
        print(describe_tasks(task), file=sys.__stderr__, flush=True)
        # Through the loop's self-pipe: the loop was interrupted inside select(), which Python
        # resumes after a signal handler, so a plain cancel() would wait for its next wake-up.
        self._loop = task.get_loop()
        self._loop.call_soon_threadsafe(task.cancel, message)

    def _test_task(self) -> asyncio.Task[object] | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync test, or the loop is not running: nothing to cancel
            return None
        for task in asyncio.all_tasks(loop):
            if getattr(task.get_coro(), "cr_code", None) is self._code:
                return task
        return None


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    """Where a task is suspended, outermost first: the whole chain of awaits, to the leaf.

    ``Task.print_stack`` shows only the task's own coroutine, not what it is awaiting inside.
    """
    chain: list[str] = []
    step: object = task.get_coro()
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return chain


def describe_tasks(test_task: asyncio.Task[object]) -> str:
    """The test task's chain of awaits, then every other pending task's, for the report."""
    lines = ["the test was at:", *(f"  {where}" for where in _awaiting(test_task))]
    others = [t for t in asyncio.all_tasks(test_task.get_loop()) if t is not test_task]
    for other in others:
        lines.append(f"task {other.get_name()} was at:")
        lines.extend(f"  {where}" for where in _awaiting(other))
    return "\n".join(lines)


def forgive_abandoned_resources(running: RunningTest) -> None:
    """After a test was interrupted or failed, an unclosed-resource warning is printed, not
    raised.

    What such a test abandoned (a client cancelled halfway through its start, one an assertion
    skipped the closing of) may only be collected at some later point, in some later test,
    where its ResourceWarning would fail a test that did nothing wrong. Before any interruption
    or failure every such warning still fails the test it happens in (a leak of a passing test
    is a bug). Installed over pytest's own hook, which it calls for the rest.
    """
    pytest_hook = sys.unraisablehook

    def hook(unraisable: UnraisableHookArgs) -> None:
        abandoned = running.interruptions or running.failures
        if abandoned and isinstance(unraisable.exc_value, ResourceWarning):
            print(
                f"(after an interrupted or failed test, not counted: {unraisable.exc_value})",
                file=sys.__stderr__,
            )
            return
        pytest_hook(unraisable)

    sys.unraisablehook = hook


def alarm_handler(running: RunningTest, timeout: float) -> Callable[[int, FrameType | None], None]:
    """A SIGALRM handler for a test's call phase, in place of pytest-timeout's."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        running.interrupt(f"the test ran over its {timeout:.0f}s timeout")

    return handler
