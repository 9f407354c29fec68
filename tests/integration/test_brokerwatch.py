"""The test suite's broker watch: a broker that stops answering fails the running test fast.

A broker of its own is frozen with SIGSTOP, which looks to clients exactly like the hung Tansu
seen here (connections open, nothing answered).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from types import FrameType

import pytest
import pytest_asyncio

from common.runtime import HOST, EmbeddedBroker
from tests.brokerwatch import HUNG_SIGNAL, BrokerWatch, RunningTest, broker_answers


@pytest_asyncio.fixture
async def own_broker() -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    await broker.start()
    try:
        yield broker
    finally:
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGCONT)
        await broker.stop()


async def test_a_frozen_broker_fails_the_running_test_and_nothing_else(
    own_broker: EmbeddedBroker,
) -> None:
    assert broker_answers(HOST, own_broker.port)
    running = RunningTest()
    fired: list[str] = []

    def record(_signum: int, _frame: FrameType | None) -> None:
        fired.append(running.reason)

    previous = signal.signal(HUNG_SIGNAL, record)
    watch = BrokerWatch(
        address=lambda: (HOST, own_broker.port),
        running=running,
        interval=0.2,
        grace=1.0,
        refire=1.0,
        probe_timeout=0.3,
    )
    watch.start()
    try:
        await asyncio.sleep(1.0)
        assert fired == []  # a broker that answers is left alone
        assert own_broker.pid is not None
        os.kill(own_broker.pid, signal.SIGSTOP)
        await asyncio.sleep(2.5)
        assert fired == []  # hung, but no test is in its call phase: nothing to fail
        running.nodeid = "tests/some_test.py::test_x"
        await asyncio.sleep(3.0)
        running.nodeid = None
        count = len(fired)
        await asyncio.sleep(1.5)
    finally:
        watch.stop()
        signal.signal(HUNG_SIGNAL, previous)
    assert count >= 2, fired  # fired, then fired again while the same test still ran
    assert len(fired) == count  # and not once the test was over
    assert f"{HOST}:{own_broker.port} has not answered" in fired[0]
    assert not broker_answers(HOST, own_broker.port, timeout=0.5)


def test_fail_now_fails_only_a_running_test() -> None:
    running = RunningTest()
    running.fail_now(HUNG_SIGNAL, None)  # no test running: ignored
    running.nodeid, running.reason = "t", "the broker has not answered"
    with pytest.raises(pytest.fail.Exception, match="Timeout: the broker has not answered"):
        running.fail_now(HUNG_SIGNAL, None)
