"""``marketfeed lag`` against the real broker and Redis: live, idle, stalled and dead caches."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from common.cache import CacheSettings, CachingConsumer
from common.cli import OneLineParser
from common.errors import BrokerUnavailableError, CacheUnavailableError, StateNotFoundError
from common.runtime import EmbeddedStack
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from feed_publisher.universe import universe
from marketfeed.lag import command
from marketfeed.lag.monitor import LagMonitor, Report
from marketfeed.lag.render import render
from marketfeed.lag.rules import LagState, Thresholds
from marketfeed.lag.verdict import number_ranges
from marketfeed.targets import Target
from tests.feedkey import FEED_KEY
from tests.helpers import communicate

SERVICE = "order_entry"
INTEREST = universe(50)[:10]


def target_of(stack: EmbeddedStack, prefix: str) -> Target:
    return Target(
        service=SERVICE,
        bootstrap=stack.bootstrap,
        redis_url=stack.redis_url(SERVICE),
        redis_prefix=prefix,  # the topic prefix is unique per test, so is this
        topic_prefix=prefix,
        partitions=4,
    )


def cache_of(stack: EmbeddedStack, prefix: str) -> CachingConsumer:
    settings = CacheSettings(
        feed_key=FEED_KEY,
        bootstrap=stack.bootstrap,
        topic_prefix=prefix,
        partitions=4,
        redis_url=stack.redis_url(SERVICE),
        redis_prefix=prefix,
        snapshot_timeout=0.5,
    )
    return CachingConsumer(settings, service=SERVICE, interest=INTEREST)


def lag_args(*flags: str) -> argparse.Namespace:
    parser = OneLineParser(prog="marketfeed lag")
    command.configure(parser)
    return parser.parse_args(list(flags))


def flags_for(target: Target, *more: str) -> list[str]:
    return [
        "--bootstrap",
        target.bootstrap,
        "--redis-url",
        target.redis_url,
        "--redis-prefix",
        target.redis_prefix,
        *more,
    ]


@contextlib.asynccontextmanager
async def publishing(publisher: Publisher) -> AsyncIterator[None]:
    """The publisher publishing as a task until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await publisher.sink.flush()


async def until(
    monitor: LagMonitor, check: Callable[[Report], bool], *, timeout: float = 30.0
) -> Report:
    """Sample every 0.2 s until ``check`` holds for the one target."""
    deadline = time.monotonic() + timeout
    while True:
        (report,) = await monitor.update()
        if check(report):
            return report
        assert time.monotonic() < deadline, f"timed out; last: {report.lag}"
        await asyncio.sleep(0.2)


async def test_live_then_idle_then_stalled_then_down(
    stack: EmbeddedStack, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = target_of(stack, prefix)
    config = PublisherConfig(
        feed_key=FEED_KEY,
        bootstrap=stack.bootstrap,
        topic_prefix=prefix,
        partitions=4,
        symbols=50,
        rate=2000,
        seed=1,
    )
    async with contextlib.AsyncExitStack() as resources:
        publisher = await resources.enter_async_context(Publisher(config))
        monitor = await resources.enter_async_context(LagMonitor([target], worst=3))
        cache = cache_of(stack, prefix)
        resources.push_async_callback(cache.stop)

        async with publishing(publisher):
            await cache.start()
            await until(monitor, lambda r: r.lag.apply_rate is not None and r.lag.apply_rate > 0)
            (live,) = await monitor.measure(0.5)
        assert live.lag.state == LagState.LIVE, live.lag
        assert live.lag.partitions, "no partitions assigned"
        # Sane magnitudes, not a speed test (that is `bench consumers`): at 2,000 msg/s a
        # healthy cache is a few fetches behind, and the suite's own load (eight and more on two
        # cores) has put it a second behind; ten seconds would be a monitor that is wrong.
        assert live.lag.offset_lag < 20_000, live.lag
        assert live.lag.time_lag_s is not None
        assert 0 <= live.lag.time_lag_s < 10.0, live.lag
        assert live.lag.apply_rate is not None
        assert live.lag.apply_rate > 100
        assert [s.symbol for s in live.lag.worst_fresh] != []
        assert all(s.symbol in INTEREST for s in live.lag.worst_fresh)

        # The feed stops: once the cache has caught up it is idle, with no time lag at all.
        await until(monitor, lambda r: r.lag.offset_lag == 0)
        (idle,) = await monitor.measure(0.5)
        assert idle.lag.state == LagState.IDLE, idle.lag
        assert idle.lag.reason == "caught up, feed quiet"
        assert [p.time_lag_s for p in idle.lag.partitions] == [0.0] * len(idle.lag.partitions)
        assert all(p.state == LagState.IDLE for p in idle.lag.partitions)
        # Every record on the partitions is applied: the exact watermark is one past it.
        parts = idle.lag.partitions
        assert [p.applied_offset for p in parts] == [p.high_watermark - 1 for p in parts]

        # The command itself, one-shot JSON, against flags rather than a running `up`.
        code = await command.run(lag_args(*flags_for(target, "--json", "--interval", "0.3")))
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        (service,) = out["services"]
        assert (service["service"], service["state"], service["offset_lag"]) == (SERVICE, "idle", 0)

        # --watch when stdout is not a terminal: one block per refresh, until --duration.
        code = await command.run(
            lag_args(*flags_for(target, "--watch", "--duration", "1.3", "--interval", "0.5"))
        )
        text = capsys.readouterr().out
        assert code == 0
        assert "\x1b[" not in text
        # Refreshes at 0, 0.5 and 1.0 s at most, fewer if a refresh is slow (a loaded machine):
        # how many is timing; that each block is whole and the watch ends by --duration is not.
        blocks = text.count("marketfeed lag ·")
        assert 1 <= blocks <= 3, text
        assert text.count(f"{SERVICE}  IDLE") == blocks, text

        # The consumer stops while the feed resumes: records wait, nothing moves -> stalled,
        # by its partitions alone (a heartbeat allowed to be a minute old has no say).
        await cache.stop()
        patient = Thresholds(stale_after_s=60.0, down_after_s=120.0)
        async with (
            LagMonitor([target], thresholds=patient) as by_partitions,
            publishing(publisher),
        ):
            await asyncio.sleep(0.3)
            (stalled,) = await by_partitions.measure(1.0)
            code = await command.run(lag_args(*flags_for(target, "--interval", "1")))
        text = capsys.readouterr().out
        assert stalled.lag.state == LagState.STALLED, stalled.lag
        assert stalled.lag.offset_lag > 0
        assert stalled.lag.apply_rate == 0.0
        waiting = [p for p in stalled.lag.partitions if p.offset_lag > 0]
        assert {p.state for p in waiting} == {LagState.STALLED}, stalled.lag
        named = number_ranges(p.partition for p in waiting)
        assert stalled.lag.reason.startswith(
            f"{len(waiting)} of {len(stalled.lag.partitions)} partitions stalled: {named} "
        ), stalled.lag.reason
        assert code == 1, text
        assert f"{SERVICE}  STALLED" in text or f"{SERVICE}  DOWN" in text, text

        # No heartbeat for longer than down_after: down.
        async with LagMonitor([target], thresholds=Thresholds(down_after_s=2.0)) as strict:
            down = await until(strict, lambda r: r.lag.state == LagState.DOWN)
        assert "no heartbeat for" in down.lag.reason


async def test_an_empty_topic_is_idle_with_no_lag(stack: EmbeddedStack, prefix: str) -> None:
    target = target_of(stack, prefix)
    async with cache_of(stack, prefix), LagMonitor([target]) as monitor:
        (report,) = await monitor.measure(0.3)
    lag = report.lag
    assert (lag.state, lag.offset_lag, lag.time_lag_s) == (LagState.IDLE, 0, 0.0), lag
    assert lag.partitions
    assert all(p.high_watermark == 0 for p in lag.partitions)
    assert [s.age_s for s in lag.worst_fresh] == [None] * len(lag.worst_fresh)  # nothing cached


async def test_a_consumer_that_never_started_is_down(stack: EmbeddedStack, prefix: str) -> None:
    async with LagMonitor([target_of(stack, prefix)]) as monitor:
        (report,) = await monitor.measure(0.1)
    assert report.lag.state == LagState.DOWN
    assert "never started" in report.lag.reason
    assert "never started" in render([report])


async def _one_line_error(run: Awaitable[int], kind: type[Exception]) -> str:
    with pytest.raises(kind) as caught:
        await run
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_unreachable_redis_or_broker_is_one_line(stack: EmbeddedStack, prefix: str) -> None:
    target = target_of(stack, prefix)
    bad_redis = ["--bootstrap", stack.bootstrap, "--redis-url", "redis://127.0.0.1:1/0"]
    message = await _one_line_error(
        command.run(lag_args(*bad_redis, "--redis-prefix", prefix)), CacheUnavailableError
    )
    assert "cannot read the cache" in message
    bad_broker = ["--bootstrap", "127.0.0.1:1", "--redis-url", target.redis_url]
    message = await _one_line_error(
        command.run(lag_args(*bad_broker, "--connect-timeout", "0.5")),
        BrokerUnavailableError,
    )
    assert "127.0.0.1:1" in message


async def test_without_a_running_up_or_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETFEED_STATE_DIR", str(tmp_path))
    message = await _one_line_error(command.run(lag_args()), StateNotFoundError)
    assert "no running `marketfeed up`" in message
    # As a user sees it: one line on stderr, exit code 1.
    script = (
        "import sys; from common.cli import OneLineParser, run_async; "
        "import marketfeed.lag.command as m; "
        "p = OneLineParser(prog='marketfeed lag'); m.configure(p); a = p.parse_args([]); "
        "sys.exit(run_async('marketfeed lag', lambda: m.run(a)))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MARKETFEED_STATE_DIR": str(tmp_path)},
    )
    out, err = await communicate(proc)
    assert proc.returncode == 1
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("marketfeed lag: no running `marketfeed up` found")


def test_bad_flags_are_config_errors() -> None:
    from common.config import build
    from common.errors import ConfigError
    from marketfeed.lag.command import LagSettings

    with pytest.raises(ConfigError, match="--service=nobody"):
        build(LagSettings, lag_args("--service", "nobody"))
    with pytest.raises(ConfigError, match="--interval=0"):
        build(LagSettings, lag_args("--interval", "0"))
