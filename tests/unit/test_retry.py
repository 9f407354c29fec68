"""common.retry: backoff, a deadline that gives up with the caller's error, one log per state."""

from __future__ import annotations

import asyncio
import logging

import pytest

from common.errors import BrokerUnavailableError
from common.retry import Backoff, Retry, describe

FAST = Backoff(first=0.001, factor=2.0, most=0.004)


class _Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"refused #{self.calls}")
        return "ok"


async def test_retries_until_success_logging_once_down_and_once_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = Retry("Redis at x", errors=(ConnectionError,), backoff=FAST)
    attempt = _Flaky(failures=25)
    with caplog.at_level(logging.WARNING, logger="common.retry"):
        assert await policy.run(attempt, what="apply") == "ok"
    assert attempt.calls == 26
    assert policy.failures == 25
    assert not policy.failing
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0] == "Redis at x unavailable during apply (refused #1); retrying"
    assert messages[1].startswith("Redis at x available again after ")


async def test_state_is_kept_across_calls_of_one_dependency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = Retry("broker", errors=(ConnectionError,), backoff=FAST)
    with caplog.at_level(logging.WARNING, logger="common.retry"):
        await policy.run(_Flaky(failures=2))
        await policy.run(_Flaky(failures=0))
        await policy.run(_Flaky(failures=1))
    assert len(caplog.records) == 4


class _SlowAfter(_Flaky):
    """Fails at once ``fast`` times, then only after ``pause`` seconds: the deadline passes
    after a known number of attempts, however loaded the machine."""

    def __init__(self, fast: int, pause: float) -> None:
        super().__init__(failures=10**9)
        self.fast, self.pause = fast, pause

    async def __call__(self) -> str:
        if self.calls >= self.fast:
            await asyncio.sleep(self.pause)
        return await super().__call__()


async def test_deadline_gives_up_with_the_callers_error() -> None:
    policy = Retry("broker", errors=(ConnectionError,), backoff=FAST)
    attempt = _SlowAfter(fast=3, pause=1.0)
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach the broker after \d+\.\d\ds"):
        await policy.run(
            attempt,
            timeout=1.0,
            give_up=lambda exc, s: BrokerUnavailableError(
                f"cannot reach the broker after {s:.2f}s"
            ),
        )
    assert attempt.calls > 3
    assert policy.failing


async def test_deadline_without_give_up_raises_the_last_error() -> None:
    with pytest.raises(ConnectionError, match="refused"):
        await Retry("x", errors=(ConnectionError,), backoff=FAST).run(
            _Flaky(failures=10**9), timeout=0.02
        )


async def test_other_errors_are_not_retried() -> None:
    async def bad() -> None:
        raise ValueError("a bug, not an outage")

    policy = Retry("x", errors=(ConnectionError,), backoff=FAST)
    with pytest.raises(ValueError, match="a bug"):
        await policy.run(bad)
    assert policy.failures == 0


def test_backoff_grows_to_its_ceiling() -> None:
    delays = Backoff(first=0.1, factor=2.0, most=0.5).delays()
    assert [delays() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_describe_is_one_line() -> None:
    assert describe(ConnectionError("a\nb")) == "a"
    assert describe(TimeoutError()) == "TimeoutError"
