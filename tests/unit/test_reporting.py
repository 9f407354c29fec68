"""What reaches the log: URLs without secrets, counters while they change, one line per outage."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from aiokafka.errors import KafkaConnectionError

from common.errors import BrokerUnavailableError
from common.kafka import with_backoff
from common.logs import redact_url
from common.report import PeriodicReport
from common.retry import Backoff
from common.schema import OrderFilled
from common.schema.orders import OrderKind
from order_entry.config import OrderEntryConfig
from order_entry.processor import OrderProcessor
from order_entry.stats import Decided, OrderStats
from portfolio.config import PortfolioConfig
from portfolio.keeper import PositionKeeper
from portfolio.positions import Position
from tests.feedkey import FEED_KEY


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0?password=pw", "redis://:***@h:6379/0?password=***"),
        ("rediss://user:pw@h/1", "rediss://user:***@h/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@h:6379", "redis://user@h:6379"),
        ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://u:p@[::1]:6379/2", "redis://u:***@[::1]:6379/2"),
        ("redis://:p@ss@h:1/0", "redis://:***@h:1/0"),
        ("rediss://h:1/0?ssl_ca_certs=/ca.pem", "rediss://h:1/0?ssl_ca_certs=/ca.pem"),
        ("127.0.0.1:9092", "127.0.0.1:9092"),
        ("user:pw@host:9092", "user:***@host:9092"),
    ],
)
def test_redact_url_keeps_the_server_and_masks_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_periodic_report_logs_changes_only_and_a_final_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = {"n": 0}
    logger = logging.getLogger("test.report")
    with caplog.at_level(logging.INFO, logger="test.report"):
        async with PeriodicReport(
            lambda: f"{counter['n']} done", logger=logger, prefix="x: ", every=0.02
        ):
            await asyncio.sleep(0.07)  # unchanged: nothing
            counter["n"] = 3
            await asyncio.sleep(0.07)  # changed once: one line
    assert [r.getMessage() for r in caplog.records] == ["x: 3 done", "stopped: 3 done"]


def test_order_stats_count_outcomes_of_answered_commands_only() -> None:
    stats = OrderStats()
    filled, rejected = Decided(OrderKind.FILLED), Decided(OrderKind.REJECTED, "STALE_QUOTE")
    for outcome in (filled, filled, rejected, None):
        stats.answered(outcome)
    stats.answered(Decided(OrderKind.CANCELLED))
    assert (stats.commands, stats.filled, stats.cancelled, stats.rejected) == (5, 2, 1, 1)
    assert stats.rejections == {"STALE_QUOTE": 1}
    assert stats.describe().startswith("5 commands answered (2 filled, 1 cancelled, 1 rejected)")


class _Flaky:
    """Fails with each error of ``errors`` in turn, then returns ``result``."""

    def __init__(self, errors: list[BaseException], result: Any = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self, *_args: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_with_backoff_logs_once_then_gives_up_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = _Flaky([KafkaConnectionError("refused")] * 1000)
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach Kafka at h:1 \(admin\) after"):
        await with_backoff("admin", attempt, bootstrap="h:1", timeout=0.1, first_delay=0.005)
    assert attempt.calls >= 2  # retried (how often depends on how busy the machine is)
    assert _messages(caplog) == [
        "admin: Kafka at h:1 unavailable (KafkaConnectionError: refused); retrying"
    ]


async def test_the_order_processor_holds_a_command_with_one_line_per_outage(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("order_entry.processor.HOLD", Backoff(first=0.001, most=0.001))
    config = OrderEntryConfig(
        feed_key=FEED_KEY, redis_url="redis://:pw@127.0.0.1:1/0", bootstrap="h:1"
    )
    processor = OrderProcessor(config, tradable={"A"}, redis_client=aioredis.Redis())
    away = redis.exceptions.ConnectionError("gone")
    attempt = _Flaky([away] * 30 + [KafkaConnectionError("broker gone")] * 30 + [away])
    assert await processor._retrying(attempt) == "ok"
    assert attempt.calls == 62
    messages = _messages(caplog)
    # Each server: one line when it goes, one when it is back (Redis never was in between).
    assert len(messages) == 4, messages
    assert (
        messages[0]
        == "order_entry: Redis at redis://:***@127.0.0.1:1/0 unavailable (gone); retrying"
    )
    assert messages[1].startswith("order_entry: Kafka at h:1 unavailable (")
    assert messages[2].startswith("order_entry: Kafka at h:1 available again after ")
    assert messages[3].startswith(
        "order_entry: Redis at redis://:***@127.0.0.1:1/0 available again"
    )
    assert not [m for m in messages if "pw" in m]


async def test_the_keeper_holds_a_fill_with_one_line_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill = OrderFilled(
        order_id="o1", account="a", symbol="AAAA", side="B", qty=1, price=10.0, ts_ns=1
    )
    after = Position(account="a", symbol="AAAA", qty=1, avg_price=10.0)
    store: Any = type("Store", (), {})()
    store.apply = _Flaky([redis.exceptions.ReadOnlyError("read only")] * 20, result=after)
    seen: list[Position] = []
    keeper = PositionKeeper(
        PortfolioConfig(feed_key=FEED_KEY), store=store, on_position=seen.append
    )
    keeper.store_retry.backoff = Backoff(first=0.001, most=0.001)
    await keeper.handle(fill.encode())
    assert seen == [after]
    assert keeper.applied == 1
    messages = _messages(caplog)
    assert len(messages) == 2, messages
    assert messages[0].startswith("portfolio: Redis at redis://127.0.0.1:6379/0 unavailable")
