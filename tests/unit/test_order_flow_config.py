"""Settings of the order flow: ``up --orders-rate`` / ``--accounts`` and the driver's own flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from common.cli import OneLineParser
from common.config import add_arguments, build
from common.errors import ConfigError
from marketfeed.up import UpConfig
from order_flow.config import OrderFlowConfig


def _build(cls: type[Any], argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Any:
    parser = OneLineParser(prog="test")
    add_arguments(parser, cls)
    return build(cls, parser.parse_args(list(argv)), environ=env or {})


def test_up_runs_a_small_order_flow_by_default() -> None:
    config = _build(UpConfig)
    assert config.orders_rate == 2.0
    assert config.accounts == 10


def test_up_orders_rate_from_env_flag_wins_and_zero_turns_it_off() -> None:
    assert _build(UpConfig, env={"MARKETFEED_ORDERS_RATE": "0"}).orders_rate == 0.0
    assert _build(UpConfig, env={"MARKETFEED_ORDERS_RATE": "7.5"}).orders_rate == 7.5
    flagged = _build(UpConfig, ["--orders-rate", "3"], env={"MARKETFEED_ORDERS_RATE": "0"})
    assert flagged.orders_rate == 3.0
    assert _build(UpConfig, env={"MARKETFEED_ACCOUNTS": "25"}).accounts == 25


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--orders-rate", "-1"], "--orders-rate=-1.0: must be a finite number >= 0"),
        (["--orders-rate", "inf"], "--orders-rate=inf: must be a finite number >= 0"),
        (["--orders-rate", "nan"], "--orders-rate=nan: must be a finite number >= 0"),
        (["--orders-rate", "fast"], "--orders-rate='fast': not a valid float"),
        (["--accounts", "0"], "--accounts=0: must be between 1 and 999"),
        (["--accounts", "1000"], "--accounts=1000: must be between 1 and 999"),
    ],
)
def test_up_refuses_bad_order_flow_settings(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _build(UpConfig, argv)
    assert str(info.value).startswith(needle)


def test_order_flow_settings() -> None:
    config = _build(
        OrderFlowConfig,
        ["--tradable", "AAAA,AAAB", "--seed", "3"],
        env={"MARKETFEED_ORDERS_RATE": "5", "MARKETFEED_BAD_RATIO": "0.5"},
    )
    assert config.tradable == ("AAAA", "AAAB")
    assert config.orders_rate == 5.0
    assert config.bad_ratio == 0.5
    assert config.seed == 3
    assert config.redis_url is None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--orders-rate", "0"], "--orders-rate=0.0: must be > 0"),
        (["--bad-ratio", "1.5"], "--bad-ratio=1.5: must be between 0.0 and 1.0"),
        (
            ["--limit-ratio", "0.7", "--bad-ratio", "0.5"],
            "--limit-ratio=0.7 and --bad-ratio=0.5: must add up to at most 1",
        ),
        (["--redis-url", "localhost:6379"], "--redis-url=localhost:6379: must be a redis"),
    ],
)
def test_order_flow_refuses_bad_settings(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _build(OrderFlowConfig, argv)
    assert str(info.value).startswith(needle)
