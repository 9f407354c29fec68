"""marketfeed.bench.core: the settings base and its smoke presets, how children are launched,
CPU in cores, report formatting, and entry modules that stay light to import."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.config import add_arguments, build, to_env
from common.errors import ConfigError
from common.kafka import KafkaSettings
from feed_publisher.config import PublisherConfig
from marketfeed.bench.access.settings import AccessBenchConfig
from marketfeed.bench.consumers import command as consumers_command
from marketfeed.bench.consumers.roles.base import WorkerParams
from marketfeed.bench.consumers.settings import ConsumersBenchConfig
from marketfeed.bench.consumers.worker import main as worker_main
from marketfeed.bench.core.children import child_env, cores, module_argv
from marketfeed.bench.core.clients import kafka_fields, kafka_settings
from marketfeed.bench.core.report import DASH, finite, ms, shown, table, write_json
from marketfeed.bench.core.servers import UNTHROTTLED, Servers, feed_config
from marketfeed.bench.core.settings import BenchSettings, rate_label
from marketfeed.bench.orders.echo import EchoConfig
from marketfeed.bench.orders.settings import OrdersBenchConfig
from marketfeed.bench.soak import command as soak_command
from marketfeed.bench.soak.settings import SoakConfig
from order_entry.config import OrderEntryConfig
from tests.feedkey import FEED_KEY

BENCHES = [ConsumersBenchConfig, OrdersBenchConfig, SoakConfig, AccessBenchConfig]
SHARED = {f.name for f in dataclasses.fields(BenchSettings)}


@pytest.mark.parametrize("cls", BENCHES)
def test_every_benchmark_has_the_shared_settings_as_flags(cls: type[BenchSettings]) -> None:
    assert {f.name for f in dataclasses.fields(cls)} >= SHARED
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    flags = {o for action in parser._actions for o in action.option_strings}
    assert {"--symbols", "--duration", "--warmup", "--out", "--smoke", "--redis-url"} <= flags


@pytest.mark.parametrize("cls", BENCHES)
def test_smoke_preset_only_with_smoke(cls: type[BenchSettings]) -> None:
    plain = build(cls, {"symbols": "300", "duration": "7"}, environ={})
    assert plain.effective() == plain
    smoke = build(cls, {"smoke": True, "symbols": "300", "duration": "7"}, environ={}).effective()
    # The preset wins over the flags, and leaves what it does not name.
    assert smoke.symbols == 200
    assert smoke.duration < 7
    assert smoke.smoke
    assert smoke.seed == plain.seed
    assert smoke.smoke_preset() == smoke


def test_the_base_has_no_preset_of_its_own() -> None:
    with pytest.raises(NotImplementedError):
        BenchSettings(smoke=True).effective()


def test_cross_checks_run_after_the_preset() -> None:
    # 20 tradable of the preset's 200 symbols: fine, whatever --symbols said.
    config = build(OrdersBenchConfig, {"smoke": True, "symbols": "10"}, environ={}).effective()
    assert config.tradable <= config.symbols
    with pytest.raises(ConfigError, match="--tradable=20"):
        build(OrdersBenchConfig, {"symbols": "10", "tradable": "20"}, environ={}).effective()


@pytest.mark.parametrize(
    ("cls", "args", "words"),
    [
        (ConsumersBenchConfig, {"symbols": "0"}, "--symbols=0: must be between 1 and 456976"),
        (OrdersBenchConfig, {"symbols": "456977"}, "--symbols=456977: must be between"),
        (ConsumersBenchConfig, {"rates": "10,fast"}, "--rates=10,fast: 'fast' is not a number"),
        (OrdersBenchConfig, {"order_rates": "-1"}, "--order-rates=-1: '-1': every rate must"),
        (OrdersBenchConfig, {"warmup": "-1"}, "--warmup=-1.0: must be >= 0"),
    ],
)
def test_shared_checks_name_the_flag(
    cls: type[BenchSettings], args: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(cls, args, environ={})
    assert str(caught.value).startswith(words)


@pytest.mark.parametrize(
    ("entry", "flags", "message"),
    [
        (consumers_command, ["--rates", "1000,0"], "--rates"),
        (consumers_command, ["--rates=-5,1000"], "--rates"),
        (consumers_command, ["--interest", "0"], "--interest"),
        (consumers_command, ["--interest", "1.5"], "--interest"),
        (consumers_command, ["--consumers", "caching,fancy"], "--consumers"),
        (consumers_command, ["--duration", "0"], "--duration"),
        (consumers_command, ["--pause", "-1"], "--pause"),
        (soak_command, ["--symbols", "10", "--tradable", "20"], "--tradable=20: must be at most"),
        (soak_command, ["--segment", "0.9"], "--segment=0.9: must be in (0, 0.5]"),
        (soak_command, ["--duration", "10", "--sample-every", "20"], "--sample-every=20: must"),
        (soak_command, ["--rate", "0"], "--rate=0"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(
    entry: Any, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry.main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{entry.PROG}: {message}"), err


def test_rate_labels() -> None:
    assert rate_label(None) == "max"
    assert rate_label(10_000.0) == "10,000"


def _round_trip(cls: type[Any], argv: list[str], secrets: dict[str, str] | None = None) -> Any:
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return build(
        cls, parser.parse_args(argv), environ={"MARKETFEED_SYMBOLS": "7", **(secrets or {})}
    )


def test_children_are_launched_from_their_config() -> None:
    kafka = KafkaSettings(bootstrap="127.0.0.1:9", topic_prefix="p.", partitions=4)
    feed = feed_config(kafka, symbols=50, rate=None, seed=3, log_level="WARNING")
    assert feed.rate == UNTHROTTLED
    order_entry = OrderEntryConfig(
        feed_key=FEED_KEY,
        **kafka_fields(kafka),
        redis_url="redis://127.0.0.1:1/0",
        tradable_file=Path("/t"),
    )
    echo = EchoConfig(**kafka_fields(kafka), fetch_max_wait_ms=9)
    for config in (feed, order_entry, echo):
        argv = module_argv("some.module", config)
        assert argv[:3] == [sys.executable, "-m", "some.module"]
        # Every setting is on the command line, but the secrets (the feed key), which go by
        # environment: an inherited variable changes nothing.
        assert _round_trip(type(config), argv[3:], to_env(config)) == config
        assert FEED_KEY not in " ".join(argv)


def test_a_child_gets_no_marketfeed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFEED_SYMBOLS", "7")
    monkeypatch.setenv("SOMETHING_ELSE", "1")
    env = child_env(PublisherConfig(feed_key=FEED_KEY))
    assert "MARKETFEED_SYMBOLS" not in env
    assert env["MARKETFEED_FEED_KEY"] == FEED_KEY
    assert env["SOMETHING_ELSE"] == "1"


def test_a_worker_is_launched_from_its_params() -> None:
    params = WorkerParams(
        **kafka_fields(kafka_settings(ConsumersBenchConfig(), "127.0.0.1:9", "run.s1.")),
        rate=None,
        redis_url="",
        interest=12,
    )
    argv = module_argv("marketfeed.bench.consumers.worker", params, "caching")
    assert argv[3] == "caching"
    assert _round_trip(WorkerParams, argv[4:], to_env(params)) == params
    # The worker itself refuses a role it does not know, in one line, before starting anything.
    with pytest.raises(SystemExit) as caught:
        worker_main(["fancy", *argv[4:]])
    assert caught.value.code == 2


def test_cores_between_two_readings() -> None:
    before = {"a": 1.0, "b": None, "c": 2.0}
    after = {"a": 3.0, "b": 5.0}
    assert cores(before, after, 4.0) == {"a": 0.5, "b": None, "c": None}
    assert cores(before, after, 0.0) == {"a": None, "b": None, "c": None}


def test_server_pids_are_named_for_the_report() -> None:
    servers = Servers("b:1", {"x": "redis://r"}, broker_pid=10, redis_pids={"x": 11, "y": 12})
    assert servers.pids(lambda s: f"redis {s}") == {"broker": 10, "redis x": 11, "redis y": 12}
    assert Servers("b:1", {}).pids(str) == {}


def test_report_numbers_and_tables(tmp_path: Path) -> None:
    assert shown(None, ",.0f") == DASH
    assert shown(12345.6, ",.0f") == "12,346"
    assert ms(3.14159, 2) == "3.14"
    assert ms(3.14159, 1) == "3.1"
    assert ms(1234.5, 1) == "1,234"
    assert ms(None, 2) == DASH
    assert table(["a", "bb"], [["1", "22"], ["333", "4"]]).splitlines() == [
        "| a   | bb |",
        "|-----|----|",
        "|   1 | 22 |",
        "| 333 |  4 |",
    ]
    assert finite({"x": [math.nan, 1.0, (math.inf,)]}) == {"x": [None, 1.0, [None]]}

    @dataclasses.dataclass
    class Figures:
        rate: float

    write_json(Figures(math.nan), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == {"rate": None}


@pytest.mark.parametrize(
    "module",
    [
        "marketfeed.bench.consumers.command",
        "marketfeed.bench.orders.command",
        "marketfeed.bench.soak.command",
        "marketfeed.bench.publisher",
    ],
)
def test_entry_modules_import_nothing_heavy(module: str) -> None:
    # The command line imports every subcommand to build its parser: numpy, aiokafka, faust,
    # matplotlib and hdrh are imported when a benchmark runs, not before.
    code = (
        f"import sys, argparse, {module} as m\n"
        "m.configure(argparse.ArgumentParser())\n"
        "heavy = ('numpy', 'aiokafka', 'faust', 'matplotlib', 'hdrh', 'redis')\n"
        "print([n for n in heavy if n in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
