"""Integration tests only: the shared embedded broker must answer before each test starts.

The embedded broker (Tansu 0.6.0) has been seen to hang for good, about one test run in
seven here, in the pre-existing cache tests as much as in new ones: it answers no request and
ignores SIGTERM. A hung broker is replaced before the next test (fresh topics per test make
that safe), and a test that timed out in it is run once more (``--reruns 1`` for timeouts, in
pyproject.toml). The replacement is logged, so a run says when it happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from common.runtime import EmbeddedStack

log = logging.getLogger(__name__)


async def _answers(bootstrap: str, timeout: float = 5.0) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            await admin.list_topics()
    except (TimeoutError, KafkaError, OSError):
        return False
    else:
        return True
    finally:
        try:
            async with asyncio.timeout(timeout):
                await admin.close()
        except (TimeoutError, KafkaError, OSError):
            log.warning("could not close an admin client of a hung broker")


@pytest_asyncio.fixture(autouse=True)
async def _broker_answers(stack: EmbeddedStack) -> AsyncIterator[None]:
    if stack.broker is not None and not await _answers(stack.bootstrap):
        log.warning("the embedded broker at %s does not answer; replacing it", stack.bootstrap)
        await stack.restart_broker()
    yield
