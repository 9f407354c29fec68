"""``marketfeed up`` launches each child from a config built from up's settings and environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from common.cli import OneLineParser
from common.config import add_arguments, build, to_argv, to_env
from common.feedsign import FeedKeys
from common.kafkasec import PLAINTEXT
from common.topics import Topics
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import universe
from http_api.config import ApiConfig
from marketfeed.launches import Launch, children
from marketfeed.status import StatusLine
from marketfeed.up import UpConfig
from order_entry.config import OrderEntryConfig
from order_flow.config import OrderFlowConfig
from portfolio.config import PortfolioConfig

KEYS = FeedKeys((bytes(range(32)),))


class FakeServers:
    bootstrap = "127.0.0.1:19092"
    security = PLAINTEXT

    def redis_url(self, service: str) -> str:
        return f"redis://127.0.0.1:1/{len(service)}"


def launches(tmp_path: Path, **up: Any) -> dict[str, Launch]:
    config = UpConfig(log_dir=tmp_path, **up)
    run = children(
        config, FakeServers(), topic_prefix="", group="g", run_dir=tmp_path, feed_keys=KEYS
    )
    return {launch.name: launch for launch in run}


def test_up_settings_and_environment_reach_the_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETFEED_SESSION_TIMEOUT", "2")
    monkeypatch.setenv("MARKETFEED_MAX_QTY", "500")
    monkeypatch.setenv("MARKETFEED_BAD_RATIO", "0.3")
    children = launches(tmp_path, symbols=50, rate=1000.0, seed=7, tradable=3, watchlist=2)
    assert list(children) == ["publisher", "order_entry", "portfolio", "order_flow", "api"]
    publisher = children["publisher"].config
    assert (publisher.bootstrap, publisher.symbols, publisher.rate, publisher.seed) == (
        "127.0.0.1:19092",
        50,
        1000.0,
        7,
    )
    entry, portfolio = children["order_entry"].config, children["portfolio"].config
    assert entry.session_timeout == portfolio.session_timeout == 2.0
    assert entry.redis_url != portfolio.redis_url
    assert entry.tradable == ()
    assert entry.tradable_file.read_text().split() == ["AAAA", "AAAB", "AAAC"]
    assert portfolio.watchlist == ("AAAA", "AAAB")
    flow = children["order_flow"].config
    # The flow's bad orders are bad by order_entry's own limits, priced from its cache.
    assert (flow.max_qty, flow.redis_url, flow.bad_ratio) == (500, entry.redis_url, 0.3)
    assert flow.tradable_file == entry.tradable_file


def test_up_counts_and_duration_are_never_read_as_the_childrens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set for up: counts, and up's own duration. As a service setting each would be wrong.
    monkeypatch.setenv("MARKETFEED_TRADABLE", "5")
    monkeypatch.setenv("MARKETFEED_WATCHLIST", "4")
    monkeypatch.setenv("MARKETFEED_DURATION", "8")
    monkeypatch.setenv("MARKETFEED_TOPIC_PREFIX", "other.")
    children = launches(tmp_path, orders_rate=0.0)
    assert "order_flow" not in children
    assert children["publisher"].config.duration is None
    assert children["order_entry"].config.tradable == ()
    assert children["portfolio"].config.watchlist == tuple(universe(10))  # up's default
    assert {c.config.topic_prefix or "" for c in children.values()} == {""}


def test_child_argv_rebuilds_its_config_whatever_env_it_inherits(tmp_path: Path) -> None:
    inherited = {"MARKETFEED_TRADABLE": "5", "MARKETFEED_SESSION_TIMEOUT": "99"}
    for cls, launch in zip(
        (PublisherConfig, OrderEntryConfig, PortfolioConfig, OrderFlowConfig, ApiConfig),
        launches(tmp_path).values(),
        strict=True,
    ):
        parser = OneLineParser(prog=launch.module)
        add_arguments(parser, cls)
        argv = to_argv(launch.config)
        args = parser.parse_args(argv)
        # The feed key goes by environment, never on a command line others can read.
        assert KEYS.hex() not in " ".join(argv)
        # Secrets (the feed key, Redis URLs with their passwords) come by environment, and
        # win over it.
        environ = {**inherited, "MARKETFEED_REDIS_URL": "redis://x:1/0", **to_env(launch.config)}
        assert build(cls, args, environ=environ) == launch.config


def test_every_child_listens_on_a_free_loopback_port_it_prints(tmp_path: Path) -> None:
    children = launches(tmp_path)
    for name, launch in children.items():
        if name == "api":
            assert (launch.config.host, launch.config.port) == ("127.0.0.1", 0)
            assert not launch.has_metrics  # served on its own port
        else:
            assert launch.has_metrics, name
            assert (launch.config.metrics_host, launch.config.metrics_port) == ("127.0.0.1", "0")
    api = children["api"].config
    # Over this run's caches, never found through another up's state file.
    assert api.bootstrap == FakeServers.bootstrap
    assert api.order_entry_redis_url == children["order_entry"].config.redis_url
    assert api.portfolio_redis_url == children["portfolio"].config.redis_url


def test_up_hands_its_feed_key_to_the_publisher_the_caches_and_the_api(tmp_path: Path) -> None:
    run = launches(tmp_path)
    signed = {name for name, launch in run.items() if getattr(launch.config, "feed_key", None)}
    assert signed == {"publisher", "order_entry", "portfolio", "api"}
    assert {run[name].config.feed_key for name in signed} == {KEYS.hex()}


def test_status_line_sums_partitions_and_rates_since_the_previous_line() -> None:
    topics = Topics(prefix="")
    status = StatusLine(topics, started=100.0)
    marks = {
        TopicPartition(topics.orders_commands, 3): 4,
        TopicPartition(topics.orders_events, 3): 8,
    }
    # No generations (retention): the plain topics are generation 0.
    feed = {topics.quotes: {(0, 0): 600, (0, 1): 300}, topics.trades: {(0, 0): 100}}
    first = status.line(marks, feed, now=101.0, broker_rss_bytes=88 * 2**20)
    assert "published        1,000      1,000 msg/s" in first
    assert "md.quotes hw 900  md.trades hw 100" in first
    assert "broker 88 MB" in first
    assert "orders.commands hw 4 (4.0/s)  orders.events hw 8" in first
    feed[topics.quotes][(0, 0)] = 1600
    second = status.line(marks, feed, now=103.0)
    assert second.startswith("[     3s] published        2,000        500 msg/s")
    assert "(0.0/s)" in second
    assert "broker ?" in second


def test_up_runs_its_services_in_consumer_groups_of_its_own(tmp_path: Path) -> None:
    """A service started by hand next to up (same broker, same topics) stays out of up's
    groups unless it is given up's namespace (--group)."""
    children = launches(tmp_path)
    entry, portfolio = children["order_entry"].config, children["portfolio"].config
    assert entry.group == portfolio.group == "g"
    standalone = PortfolioConfig(bootstrap=portfolio.bootstrap)
    assert standalone.group_id("portfolio", "positions") == "marketfeed.portfolio.positions"
    assert portfolio.group_id("portfolio", "positions") == "g.portfolio.positions"
    joined = PortfolioConfig(bootstrap=portfolio.bootstrap, group="g")
    assert joined.group_id("portfolio", "positions") == "g.portfolio.positions"
    # Without --group, services on one topic prefix share their groups (as before).
    prefixed = OrderEntryConfig(topic_prefix="t.")
    assert prefixed.group_id("order_entry", "orders") == "t.marketfeed.order_entry.orders"


def test_status_line_counts_every_generation_once_even_after_it_is_deleted() -> None:
    topics = Topics(prefix="")
    status = StatusLine(topics, started=0.0)
    feed = {topics.quotes: {(3, 0): 1000, (4, 0): 10}, topics.trades: {(3, 0): 5}}
    first = status.line({}, feed, now=1.0)
    assert "published        1,015" in first
    assert "md.quotes g4 hw 10  md.trades g3 hw 5" in first
    # Generation 3 deleted, 4 grew: published never goes down, the rate is what was added.
    feed = {topics.quotes: {(4, 0): 50, (5, 0): 2}, topics.trades: {(4, 0): 1}}
    second = status.line({}, feed, now=2.0)
    assert "published        1,058         43 msg/s" in second
    assert "md.quotes g5 hw 2  md.trades g4 hw 1" in second
