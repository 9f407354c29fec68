"""Helpers for integration tests: a publisher running in the background, waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from common.kafka import KafkaSettings
from common.runtime.process import die_with_parent
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher


@contextlib.asynccontextmanager
async def running_publisher(
    kafka: KafkaSettings, *, symbols: int = 200, rate: float = 3000, seed: int = 1, **extra: object
) -> AsyncIterator[tuple[Publisher, asyncio.Event]]:
    """A publisher publishing until the caller sets the yielded event (or leaves the block)."""
    config = PublisherConfig(
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        symbols=symbols,
        rate=rate,
        seed=seed,
        **extra,  # type: ignore[arg-type]
    )
    stop = asyncio.Event()
    async with Publisher(config) as publisher:
        task = asyncio.create_task(publisher.run(stop))
        try:
            yield publisher, stop
        finally:
            stop.set()
            await task
            await publisher.sink.flush()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def spawn(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """A child process that the kernel kills if the test run dies before stopping it."""
    return await asyncio.create_subprocess_exec(*argv, preexec_fn=die_with_parent, **kwargs)
