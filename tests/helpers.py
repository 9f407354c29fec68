"""Helpers for integration tests: a publisher, order_entry processes, the events of orders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.config import to_argv, to_env
from common.kafka import KafkaSettings
from common.runtime.process import die_with_parent
from common.schema import NewOrder, decode
from common.schema.orders import TERMINAL_EVENTS, OrderEvent
from common.topics import symbol_key
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from order_entry.config import OrderEntryConfig
from tests.feedkey import FEED_KEY


def publisher_config(
    kafka: KafkaSettings, *, symbols: int = 200, rate: float = 3000, seed: int = 1, **extra: object
) -> PublisherConfig:
    """The publisher on ``kafka``'s topics, ``extra`` settings on top."""
    return PublisherConfig(
        feed_key=FEED_KEY,
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        symbols=symbols,
        rate=rate,
        seed=seed,
        **extra,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running_publisher(
    kafka: KafkaSettings, *, symbols: int = 200, rate: float = 3000, seed: int = 1, **extra: object
) -> AsyncIterator[tuple[Publisher, asyncio.Event]]:
    """A publisher publishing until the caller sets the yielded event (or leaves the block)."""
    config = publisher_config(kafka, symbols=symbols, rate=rate, seed=seed, **extra)
    stop = asyncio.Event()
    async with Publisher(config) as publisher:
        task = asyncio.create_task(publisher.run(stop))
        try:
            yield publisher, stop
        finally:
            stop.set()
            await task
            await publisher.sink.flush()


async def publish_for(publisher: Publisher, seconds: float) -> None:
    """Run a started publisher for ``seconds``, then flush what it sent."""
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    await publisher.sink.flush()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail the test with ``what`` after ``timeout``.

    The timeout only bounds a failing test: it is never what a test checks, and a loaded
    machine (two suites at once on two cores) took more than 15 s for a cache to cross a roll.
    """
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def run_bench(module: str, out: Path, *args: str) -> tuple[str, str]:
    """``python -m module --smoke --out OUT`` as CI runs it (``bench``); its stdout and stderr
    once it exited 0."""
    async with benchmark(module, "--smoke", "--out", str(out), *args) as proc:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode(), stderr.decode()


@contextlib.asynccontextmanager
async def benchmark(module: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``bench(module, args)``, stopped if the block ends while it still runs: Ctrl-C (it
    stops its stack), then SIGKILL after a grace. A test that timed out or failed half-way
    must not leave a benchmark and its broker running under the rest of the run."""
    proc = await bench(module, *args)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def communicate(proc: asyncio.subprocess.Process, timeout: float = 50) -> tuple[bytes, bytes]:
    """``proc``'s stdout and stderr once it exited; killed if it has not within ``timeout``
    (or the test is interrupted). The bound is for a failing test only: a fresh interpreter
    has taken 30 s to start and fail on a machine running two suites at once."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out or b"", err or b""


async def spawn(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """A child process that the kernel kills if the test run dies before stopping it."""
    return await asyncio.create_subprocess_exec(*argv, preexec_fn=die_with_parent, **kwargs)


async def marketfeed_command(
    *args: str,
    state_dir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 50,
) -> tuple[int, str, str]:
    """``python -m marketfeed ARGS`` as a user runs it (in ``env``, with its state in
    ``state_dir``): the exit code, stdout and stderr."""
    environ = dict(os.environ if env is None else env)
    if state_dir is not None:
        environ["MARKETFEED_STATE_DIR"] = str(state_dir)
    proc = await spawn(
        sys.executable,
        "-m",
        "marketfeed",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await communicate(proc, timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def order_entry_process(
    kafka: KafkaSettings,
    *,
    redis_url: str,
    redis_prefix: str,
    tradable: Sequence[str],
    log: Path,
    **settings: Any,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m order_entry`` launched from its config: test timings, ``settings`` on top.

    SIGTERM (then SIGKILL) when the block ends.
    """
    config = OrderEntryConfig(
        feed_key=FEED_KEY,
        **{
            "bootstrap": kafka.bootstrap,
            "topic_prefix": kafka.topic_prefix,
            "partitions": kafka.partitions,
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
            "tradable": tuple(tradable),
            "session_timeout": 2.0,  # a group join waits about half of it on the embedded broker
            "stale_after": 300.0,
            **settings,
        },
    )
    argv = [sys.executable, "-m", "order_entry", *to_argv(config)]
    with log.open("ab") as out:
        proc = await spawn(*argv, stdout=out, stderr=out, env={**os.environ, **to_env(config)})
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class OrderEvents:
    """Every event on ``orders.events``, by order id, collected in the background."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.by_order: dict[str, list[OrderEvent]] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OrderEvents:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def collect(self) -> None:
        """Start reading, from the beginning (call once the topic exists)."""
        topic = self.kafka.topics.orders_events
        self._consumer.assign([TopicPartition(topic, p) for p in range(self.kafka.partitions)])
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    assert isinstance(event, OrderEvent)
                    self.by_order.setdefault(event.order_id, []).append(event)

    def terminal(self, order_id: str) -> list[OrderEvent]:
        return [e for e in self.by_order.get(order_id, []) if isinstance(e, TERMINAL_EVENTS)]

    async def answered(self, ids: Sequence[str], *, timeout: float = 30) -> None:
        async def done() -> bool:
            return all(self.terminal(i) for i in ids)

        await eventually(done, timeout=timeout, what=f"{len(ids)} orders answered")


def market_buy(symbol: str, *, account: str = "t", qty: int = 1) -> NewOrder:
    """A market buy of ``qty`` ``symbol`` with a new order id."""
    return NewOrder(
        order_id=uuid.uuid4().hex,
        account=account,
        symbol=symbol,
        side="B",
        qty=qty,
        limit=None,
        ts_ns=time.time_ns(),
    )


async def send_order(
    producer: AIOKafkaProducer, kafka: KafkaSettings, symbol: str, *, account: str = "t"
) -> str:
    """A market buy of 1 ``symbol`` on orders.commands; its order id."""
    order = market_buy(symbol, account=account)
    await producer.send_and_wait(
        kafka.topics.orders_commands, order.encode(), key=symbol_key(symbol)
    )
    return order.order_id


def running_with(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            out.append(int(entry.name))
    return out


async def bench(module: str, *args: str) -> asyncio.subprocess.Process:
    """``python -m module args`` as a user runs a benchmark, its output piped.

    No ``MARKETFEED_*`` variable of the developer's shell may change the run.
    """
    return await spawn(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MARKETFEED_")},
    )
