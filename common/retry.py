"""The one retry loop: backoff, an optional deadline, and a log line per change of state.

Every dependency a service waits out (a Redis server, the broker) goes through a ``Retry``:
the first failure logs one warning, the recovery logs one line with how long it took, and
nothing is logged in between however long the outage lasts. ``failing`` and ``failures`` are
there for status lines and metrics. A deadline turns the last failure into the caller's own
error (``give_up``), one readable line instead of a library's traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

# Turns the last failure and the seconds spent into the error the caller raises at its deadline.
GiveUp = Callable[[BaseException, float], BaseException]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    first: float = 0.1
    factor: float = 2.0
    most: float = 2.0

    def delays(self) -> Callable[[], float]:
        """A fresh sequence of waits: ``first``, then each ``factor`` times longer, to ``most``."""
        current = self.first

        def next_delay() -> float:
            nonlocal current
            delay, current = current, min(current * self.factor, self.most)
            return delay

        return next_delay


class Retry:
    """Retries operations on one dependency (``name``, e.g. "Redis at 127.0.0.1:6379")."""

    def __init__(
        self,
        name: str,
        *,
        errors: tuple[type[BaseException], ...],
        fatal: tuple[type[BaseException], ...] = (),
        backoff: Backoff = Backoff(),
        logger: logging.Logger = log,
    ) -> None:
        """``fatal``: those of ``errors`` that end a run with a deadline at once (a refused
        password); without a deadline they are waited out like the others."""
        self.name = name
        self.errors = errors
        self.fatal = fatal
        self.backoff = backoff
        self.logger = logger
        self.failing = False
        self.failures = 0
        self._since = 0.0

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        what: str = "",
        timeout: float | None = None,
        give_up: GiveUp | None = None,
    ) -> T:
        """``await attempt()`` until it does not raise one of ``errors``.

        With ``timeout``, give up once that many seconds have passed: raise ``give_up(last
        error, seconds)``, or the last error itself. Without, retry until cancelled.
        """
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        next_delay = self.backoff.delays()
        while True:
            try:
                result = await attempt()
            except self.errors as exc:
                if deadline is not None and isinstance(exc, self.fatal):
                    if give_up is None:
                        raise
                    raise give_up(exc, time.monotonic() - started) from None
                self._failed(exc, what)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    if give_up is None:
                        raise
                    raise give_up(exc, now - started) from None
                delay = next_delay()
                await asyncio.sleep(delay if deadline is None else min(delay, deadline - now))
                continue
            self._succeeded(what)
            return result

    def _failed(self, exc: BaseException, what: str) -> None:
        self.failures += 1
        if self.failing:
            return
        self.failing = True
        self._since = time.monotonic()
        during = f" during {what}" if what else ""
        self.logger.warning("%s unavailable%s (%s); retrying", self.name, during, describe(exc))

    def _succeeded(self, what: str) -> None:
        if not self.failing:
            return
        self.failing = False
        during = f" ({what})" if what else ""
        self.logger.warning(
            "%s available again after %.1fs%s", self.name, time.monotonic() - self._since, during
        )


async def retry(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    timeout: float | None = None,
    give_up: GiveUp | None = None,
    backoff: Backoff = Backoff(),
    logger: logging.Logger = log,
) -> T:
    """One-off ``Retry(name, ...).run(attempt, ...)``, for a dependency used once (a start)."""
    policy = Retry(name, errors=errors, backoff=backoff, logger=logger)
    return await policy.run(attempt, timeout=timeout, give_up=give_up)


def describe(exc: BaseException) -> str:
    """An error as one short line: its message, or its class name when it has none."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__
