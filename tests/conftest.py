"""Fixtures shared by every test: the embedded broker and Redis, started once per session.

Every test gets fresh names on the shared servers (a topic prefix, a Redis database) from
factory fixtures, so tests never see each other's data and need no cleanup between them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from common.kafka import KafkaSettings
from common.runtime import EmbeddedStack


@pytest_asyncio.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedStack]:
    """One Tansu broker and two Redis servers for the whole session, stopped at the end."""
    log_dir = tmp_path_factory.mktemp("servers")
    async with EmbeddedStack(services=("order_entry", "portfolio"), log_dir=log_dir) as servers:
        yield servers


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka(stack: EmbeddedStack, prefix: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=prefix, partitions=4)
