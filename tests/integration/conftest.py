"""Integration tests only: the shared embedded broker must answer before each test starts.

The embedded broker (Tansu 0.6.0) has been seen not answering (see ``tests/brokerwatch.py``).
The watch fails the test that was running in it; this fixture replaces the hung broker before
the next test (fresh topics per test make that safe), and the failed test runs once more
(``--reruns 1`` for timeouts, in pyproject.toml). The replacement is logged, so a run says when
it happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest_asyncio

from common.runtime import HOST, EmbeddedStack
from common.runtime.probes import broker_answers

log = logging.getLogger(__name__)


@pytest_asyncio.fixture(autouse=True)
async def _broker_answers(stack: EmbeddedStack) -> AsyncIterator[None]:
    broker = stack.broker
    if broker is not None and not await asyncio.to_thread(broker_answers, HOST, broker.port):
        log.warning("the embedded broker at %s does not answer; replacing it", stack.bootstrap)
        await stack.restart_broker()
    yield
