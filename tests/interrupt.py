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

import pytest

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

    def begin(self, item: pytest.Item) -> None:
        function = inspect.unwrap(getattr(item, "obj", None))
        self._code = getattr(function, "__code__", None)
        self._fired = 0
        self.nodeid = item.nodeid

    def end(self) -> None:
        """The call phase is over. After an interruption, clear up what the test left behind.

        An interrupted test can leave tasks it started (a half-started client's, say) pending
        in the session's loop, and objects that warn when collected: they are cancelled and
        collected now, so that what they report goes with the failure they came from, not to
        some later test or the end of the session.
        """
        interrupted, loop = self._fired > 0, self._loop
        self.nodeid, self._code, self._loop = None, None, None
        if not interrupted:
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
        message = f"Timeout: {reason}"
        task = self._test_task() if self._fired == 1 else None
        if task is None:
            pytest.fail(message, pytrace=False)
        print(f"\n{self.nodeid}: {message}; cancelling the test. It was at:", file=sys.stderr)
        task.print_stack(file=sys.stderr)
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


def alarm_handler(running: RunningTest, timeout: float) -> Callable[[int, FrameType | None], None]:
    """A SIGALRM handler for a test's call phase, in place of pytest-timeout's."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        running.interrupt(f"the test ran over its {timeout:.0f}s timeout")

    return handler
