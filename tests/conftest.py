"""Fixtures shared by every test: the embedded broker and Redis, started once per session.

Every test gets fresh names on the shared servers (a topic prefix, a Redis database) from
factory fixtures, so tests never see each other's data and need no cleanup between them.

And the guards that keep a stuck test from hanging the run: a watch on the broker
(``tests/brokerwatch.py``), a test's timeout that cancels it rather than abandoning it
(``tests/interrupt.py``), and a hard limit that dumps every stack and exits.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from hypothesis import settings

from common.kafka import KafkaSettings
from common.runtime import HOST, EmbeddedStack
from tests.brokerwatch import BrokerWatch
from tests.interrupt import (
    INTERRUPT_SIGNAL,
    RunningTest,
    alarm_handler,
    forgive_abandoned_resources,
)

pytest_plugins = ["pytester"]

# Property tests: 50 examples each by default (every CI run draws new ones); before a change to
# what they cover, run `HYPOTHESIS_PROFILE=thorough pytest tests/unit` for 1,000 each. No
# deadline: a loaded machine makes any example slow now and then, which is no failure.
settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_running = RunningTest()
# A test's alarm re-fires this often after its deadline, in case the first interruption did not
# end it (pytest-timeout fires once; a CI run then hung for 90 minutes).
_REFIRE_S = 10.0
# The last resort, far past any test's timeout: print every thread's stack and exit, so that a
# run can never hang until CI kills it without saying where.
_HARD_LIMIT_MARGIN_S = 60.0


@pytest.hookimpl(trylast=True)  # after pytest's own unraisable-exception hook is in place
def pytest_configure(config: pytest.Config) -> None:
    signal.signal(INTERRUPT_SIGNAL, _running.on_posted)
    forgive_abandoned_resources(_running)


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


@contextlib.contextmanager
def _hard_limit(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
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
    # The call phase has a deadline of its own, armed again for a rerun: pytest-timeout arms one
    # per test, reruns included. It re-fires every _REFIRE_S until the call is over.
    timeout = _timeout_of(item)
    timeout_handler = signal.getsignal(signal.SIGALRM)
    if timeout > 0:
        signal.signal(signal.SIGALRM, alarm_handler(_running, timeout))
        signal.setitimer(signal.ITIMER_REAL, timeout, _REFIRE_S)
    _running.begin(item)
    failed = True
    try:
        with _hard_limit(item):
            result = yield
        failed = False
        return result
    finally:
        _running.end(failed=failed)
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, timeout_handler)


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
            # Shorter only for the test of the watch itself, which runs a session of its own.
            grace=float(os.environ.get("MARKETFEED_TEST_BROKER_GRACE", "12")),
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
