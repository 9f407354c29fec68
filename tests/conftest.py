"""Fixtures shared by every test: the embedded broker and Redis, started once per session.

Every test gets fresh names on the shared servers (a topic prefix, a Redis database) from
factory fixtures, so tests never see each other's data and need no cleanup between them.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from common.kafka import KafkaSettings
from common.runtime import HOST, EmbeddedStack
from tests.brokerwatch import HUNG_SIGNAL, BrokerWatch, RunningTest

_running = RunningTest()
# pytest-timeout's one SIGALRM is re-sent this often after the deadline: raised inside an asyncio
# callback, its exception is logged by the event loop and dropped (seen in a CI run that then
# hung for 90 minutes).
_REFIRE_S = 10.0
# The last resort, far past any test's timeout: print every thread's stack and exit, so that a
# run can never hang until CI kills it without saying where.
_HARD_LIMIT_MARGIN_S = 60.0


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(HUNG_SIGNAL, _running.fail_now)


@contextlib.contextmanager
def _hard_limit(item: pytest.Item) -> Iterator[None]:
    timeout = float(item.config.getini("timeout") or 0)
    if timeout > 0:
        faulthandler.dump_traceback_later(timeout + _HARD_LIMIT_MARGIN_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _hard_limit(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if remaining > 0:  # pytest-timeout armed the test's deadline (its signal method)
        signal.setitimer(signal.ITIMER_REAL, remaining, _REFIRE_S)
    _running.nodeid = item.nodeid
    try:
        with _hard_limit(item):
            return (yield)
    finally:
        _running.nodeid = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _hard_limit(item):
        return (yield)


@pytest_asyncio.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedStack]:
    """One Tansu broker and two Redis servers for the whole session, stopped at the end."""
    log_dir = tmp_path_factory.mktemp("servers")
    async with EmbeddedStack(services=("order_entry", "portfolio"), log_dir=log_dir) as servers:
        watch = BrokerWatch(
            address=lambda: (HOST, servers.broker.port) if servers.broker else None,
            running=_running,
        )
        watch.start()
        try:
            yield servers
        finally:
            watch.stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka(stack: EmbeddedStack, prefix: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=prefix, partitions=4)
