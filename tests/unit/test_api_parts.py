"""The API's parts that need no server: its config, idempotency keys, error text, the slot."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import pytest

from common.cache.settings import CacheSettings
from common.config import build, to_argv, to_env
from common.errors import ConfigError
from common.feedsign import FeedKeys, write_key_file
from common.orderclient import new_order
from common.schema import OrderAccepted, OrderRejected, Quote
from http_api.cli import main
from http_api.config import ApiConfig
from http_api.errors import ApiError, scrub
from http_api.orderdesk import keyed_order_id, same_order, view
from http_api.routes.deps import symbol_list
from http_api.stream import StreamClient


def test_a_launcher_rebuilds_the_config_from_its_flags() -> None:
    config = ApiConfig(
        bootstrap="127.0.0.1:9092",
        port=0,
        portfolio_redis_url="redis://127.0.0.1:6380/1",
        order_timeout=3.5,
    )
    parser_args = dict(arg.removeprefix("--").split("=", 1) for arg in to_argv(config))
    # Its Redis URLs (they can hold a password) go by environment, never on the command line.
    assert not [a for a in to_argv(config) if "redis://" in a]
    rebuilt = build(
        ApiConfig, {k.replace("-", "_"): v for k, v in parser_args.items()}, to_env(config)
    )
    assert rebuilt == config


def test_its_feed_key_settings_are_the_services_own(tmp_path: Path) -> None:
    # One declaration: the same flags, variables, help and secrecy as every signing service.
    keys = ("feed_key", "feed_key_file")
    assert [_field(ApiConfig, k) for k in keys] == [_field(CacheSettings, k) for k in keys]
    key_file = tmp_path / "feed.key"
    write_key_file(key_file, FeedKeys((bytes(range(32)),)))
    config = build(ApiConfig, {"feed_key_file": str(key_file)}, {})
    assert config.feed_key_file == key_file
    assert build(ApiConfig, {}, {"MARKETFEED_FEED_KEY_FILE": str(key_file)}) == config
    # The key itself is a secret: to a child by environment, never on its command line.
    keyed = ApiConfig(feed_key="ab" * 32)
    assert not [a for a in to_argv(keyed) if "ab" * 32 in a]
    assert to_env(keyed)["MARKETFEED_FEED_KEY"] == "ab" * 32


def _field(cls: type[object], name: str) -> tuple[object, ...]:
    f = next(f for f in fields(cls) if f.name == name)  # type: ignore[arg-type]
    return f.name, f.default, f.type, dict(f.metadata)


def test_bad_flags_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port=http"]) == 2
    assert capsys.readouterr().err.splitlines() == ["http_api: --port='http': not a valid int"]
    assert main(["--port=70000"]) == 2
    assert "must be 0..65535" in capsys.readouterr().err


def test_with_a_bootstrap_a_service_without_redis_is_not_served() -> None:
    resolved = ApiConfig(bootstrap="127.0.0.1:9", order_entry_redis_url="redis://h:1/0").resolve()
    assert set(resolved.caches) == {"order_entry"}
    assert resolved.kafka.bootstrap == "127.0.0.1:9"


def test_an_idempotency_key_names_one_order_per_account() -> None:
    a = keyed_order_id("alice", "k1")
    assert a == keyed_order_id("alice", "k1")
    assert a != keyed_order_id("bob", "k1")
    assert len(a) <= 64
    order = new_order(side="buy", symbol="AAAA", qty=5, account="alice", order_id=a)
    ok = [OrderAccepted(order_id=a, account="alice", symbol="AAAA", side="B", qty=5, ts_ns=1)]
    assert same_order(order, ok)
    other = new_order(side="sell", symbol="AAAA", qty=5, account="alice", order_id=a)
    assert not same_order(other, ok)
    rejected = [OrderRejected(order_id=a, symbol="AAAA", reason="NO_QUOTE", text="-", ts_ns=1)]
    assert same_order(order, rejected)
    assert view(a, rejected)["status"] == "rejected"
    assert view(a, ok)["status"] == "pending"


def test_no_url_in_an_answer_keeps_its_password() -> None:
    text = "cannot reach redis://:s3cret@10.0.0.1:6379/0?password=s3cret and rediss://u:p@h/1"
    shown = "cannot reach redis://:***@10.0.0.1:6379/0?password=*** and rediss://u:***@h/1"
    assert scrub(text) == shown


def test_symbol_lists() -> None:
    assert symbol_list(" AAAA, AAAB ,AAAA", most=5) == ["AAAA", "AAAB"]
    for bad in ("", "aa$", "A,B,C,D,E,F"):
        with pytest.raises(ApiError):
            symbol_list(bad, most=5)


def _quote(seq: int, epoch: int = 1) -> Quote:
    return Quote(
        symbol="AAAA",
        epoch=epoch,
        seq=seq,
        ts_ns=time.time_ns(),
        bid=1.0,
        ask=1.1,
        bid_size=1,
        ask_size=1,
    )


def test_a_slot_keeps_the_newest_value_and_counts_what_the_client_never_saw() -> None:
    client = StreamClient("order_entry", frozenset({"AAAA"}), 5.0)
    client.offer(_quote(1))
    assert [r.quote.seq for r in client.take(5.0) if r.quote] == [1]
    for seq in (2, 3, 4):
        client.offer(_quote(seq))
    assert client.replaced == 2
    assert [r.quote.seq for r in client.take(5.0) if r.quote] == [4]
    assert client.conflated == 2  # 2 and 3
    assert not client.changed.is_set()
    client.offer(_quote(1, epoch=2))  # a restarted publisher: a new sequence, no gap
    client.take(5.0)
    assert client.conflated == 2


def test_config_checks() -> None:
    with pytest.raises(ConfigError):
        build(ApiConfig, {"stream_max_rate": "0"}, {})


def test_bench_access_refuses_settings_that_do_not_fit_together() -> None:
    from marketfeed.bench.access.settings import AccessBenchConfig

    with pytest.raises(ConfigError, match="--interest=300"):
        build(AccessBenchConfig, {"symbols": "200", "interest": "300"}, {}).effective()
    with pytest.raises(ConfigError, match="--client-symbols=50"):
        build(AccessBenchConfig, {"interest": "20", "client_symbols": "50"}, {}).effective()
    with pytest.raises(ConfigError, match="--clients"):
        build(AccessBenchConfig, {"clients": "10,0"}, {})
