"""common.config: settings from defaults, MARKETFEED_* variables and flags; and OneLineParser."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from common.cli import EXIT_USAGE, OneLineParser
from common.config import add_arguments, build, env_name, flag_name, positive, setting
from common.errors import ConfigError
from common.kafka import KafkaSettings
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import MAX_SYMBOLS


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="feed_publisher")
    add_arguments(parser, PublisherConfig)
    return parser


def _build(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> PublisherConfig:
    return build(PublisherConfig, _parser().parse_args(list(argv)), environ=env or {})


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MARKETFEED_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("MARKETFEED_"):
            monkeypatch.delenv(name)


# --- defaults and sources ---------------------------------------------------------------------


def test_defaults() -> None:
    config = build(PublisherConfig, environ={})
    assert config == PublisherConfig()
    assert config.bootstrap == "127.0.0.1:9092"
    assert config.topic_prefix == ""
    assert config.symbols == 500
    assert config.rate == 5000.0
    assert config.seed is None
    assert config.trade_ratio == 0.1
    assert config.duration is None
    assert config.linger_ms == 0
    assert config.max_batch == 5000
    assert config.idempotence is False
    assert config.snapshots is True
    assert config.log_level == "INFO"
    # The same with an argparse namespace that holds no flags.
    assert _build() == config


def test_names() -> None:
    assert env_name("trade_ratio") == "MARKETFEED_TRADE_RATIO"
    assert flag_name("trade_ratio") == "--trade-ratio"


def test_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFEED_RATE", "100")
    config = build(PublisherConfig)  # os.environ by default
    assert config.rate == 100.0
    assert isinstance(config.rate, float)
    assert build(PublisherConfig, environ={"MARKETFEED_RATE": "100"}).rate == 100.0


def test_environment_values_are_parsed_by_type() -> None:
    config = _build(
        env={
            "MARKETFEED_SYMBOLS": " 1_000 ",
            "MARKETFEED_SEED": "42",
            "MARKETFEED_TRADE_RATIO": "0.25",
            "MARKETFEED_DURATION": "30",
            "MARKETFEED_IDEMPOTENCE": "yes",
            "MARKETFEED_BOOTSTRAP": "k1:9092,k2:9093",
            "MARKETFEED_TOPIC_PREFIX": "dev.",
            "MARKETFEED_PARTITIONS": "4",
        }
    )
    assert config.symbols == 1000
    assert config.seed == 42
    assert config.trade_ratio == 0.25
    assert config.duration == 30.0
    assert config.idempotence is True
    assert config.bootstrap == "k1:9092,k2:9093"
    assert config.topic_prefix == "dev."
    assert config.partitions == 4


def test_flag_wins_over_environment() -> None:
    env = {"MARKETFEED_RATE": "100", "MARKETFEED_SYMBOLS": "20"}
    config = _build(["--rate", "250"], env)
    assert config.rate == 250.0
    assert config.symbols == 20  # no flag: the environment still applies


def test_code_overrides_win_over_flags_and_environment() -> None:
    args = _parser().parse_args(["--rate", "250"])
    config = build(PublisherConfig, args, environ={"MARKETFEED_RATE": "100"}, rate=7.0)
    assert config.rate == 7.0


def test_build_accepts_a_plain_mapping_of_flag_values() -> None:
    config = build(PublisherConfig, {"symbols": "12", "rate": "50"}, environ={})
    assert config.symbols == 12
    assert config.rate == 50.0


def test_kafka_settings_alone() -> None:
    settings = build(
        KafkaSettings,
        environ={"MARKETFEED_PARTITIONS": "4", "MARKETFEED_CONNECT_TIMEOUT": "2.5"},
    )
    assert settings.partitions == 4
    assert settings.connect_timeout == 2.5
    assert settings.topics.prefix == ""


# --- booleans and optional values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--idempotence"], {}, True),
        (["--no-idempotence"], {}, False),
        (["--no-idempotence"], {"MARKETFEED_IDEMPOTENCE": "true"}, False),
        (["--idempotence"], {"MARKETFEED_IDEMPOTENCE": "0"}, True),
        ([], {"MARKETFEED_IDEMPOTENCE": "on"}, True),
        ([], {"MARKETFEED_IDEMPOTENCE": "TRUE"}, True),
        ([], {"MARKETFEED_IDEMPOTENCE": "1"}, True),
        ([], {"MARKETFEED_IDEMPOTENCE": "off"}, False),
        ([], {"MARKETFEED_IDEMPOTENCE": "no"}, False),
        ([], {}, False),
    ],
)
def test_bool_setting(argv: list[str], env: dict[str, str], expected: bool) -> None:
    assert _build(argv, env).idempotence is expected


def test_bool_defaulting_to_true_can_be_turned_off() -> None:
    assert _build(["--no-snapshots"], {"MARKETFEED_SNAPSHOTS": "yes"}).snapshots is False
    assert _build([], {"MARKETFEED_SNAPSHOTS": "false"}).snapshots is False
    assert _build().snapshots is True


def test_bool_flag_takes_no_value() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--idempotence", "true"])


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--seed", "none"], {"MARKETFEED_SEED": "5"}),
        (["--seed", "None"], {}),
        ([], {"MARKETFEED_SEED": "none"}),
        ([], {"MARKETFEED_SEED": ""}),
    ],
)
def test_optional_setting_none(argv: list[str], env: dict[str, str]) -> None:
    assert _build(argv, env).seed is None


def test_optional_settings_with_values() -> None:
    config = _build(["--seed", "7", "--duration", "1.5"])
    assert config.seed == 7
    assert config.duration == 1.5
    config = _build(["--duration", "none"], {"MARKETFEED_DURATION": "30"})
    assert config.duration is None


def test_non_optional_setting_does_not_accept_none() -> None:
    with pytest.raises(ConfigError, match="--symbols"):
        _build(["--symbols", "none"])


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--rate=-5"], {}, ["--rate", "-5"]),
        ([], {"MARKETFEED_RATE": "-5"}, ["MARKETFEED_RATE", "-5"]),
        (["--rate", "0"], {}, ["--rate", "0"]),
        (["--rate", "nan"], {}, ["--rate", "nan"]),
        (["--rate", "abc"], {}, ["--rate", "abc"]),
        ([], {"MARKETFEED_RATE": "abc"}, ["MARKETFEED_RATE", "abc"]),
        (["--symbols", "0"], {}, ["--symbols", "0"]),
        ([], {"MARKETFEED_SYMBOLS": "0"}, ["MARKETFEED_SYMBOLS", "0"]),
        (["--symbols", str(MAX_SYMBOLS + 1)], {}, ["--symbols", str(MAX_SYMBOLS + 1)]),
        (["--symbols", "1.5"], {}, ["--symbols", "1.5"]),
        (["--bootstrap", "foo"], {}, ["--bootstrap", "foo"]),
        ([], {"MARKETFEED_BOOTSTRAP": "foo"}, ["MARKETFEED_BOOTSTRAP", "foo"]),
        (["--bootstrap", "host:0"], {}, ["--bootstrap", "host:0"]),
        (["--bootstrap", "host:65536"], {}, ["--bootstrap", "host:65536"]),
        (["--bootstrap", ":9092"], {}, ["--bootstrap", ":9092"]),
        (["--bootstrap", "host:"], {}, ["--bootstrap", "host:"]),
        (["--bootstrap", "a:1,b"], {}, ["--bootstrap", "a:1,b"]),
        ([], {"MARKETFEED_IDEMPOTENCE": "maybe"}, ["MARKETFEED_IDEMPOTENCE", "maybe"]),
        (["--trade-ratio", "1.5"], {}, ["--trade-ratio", "1.5"]),
        (["--trade-ratio", "-0.1"], {}, ["--trade-ratio", "-0.1"]),
        (["--duration", "0"], {}, ["--duration", "0"]),
        (["--linger-ms", "-1"], {}, ["--linger-ms", "-1"]),
        (["--max-batch", "0"], {}, ["--max-batch", "0"]),
        (["--partitions", "0"], {}, ["--partitions", "0"]),
        (["--seed", "x"], {}, ["--seed", "x"]),
        ([], {"MARKETFEED_CONNECT_TIMEOUT": "-1"}, ["MARKETFEED_CONNECT_TIMEOUT", "-1"]),
    ],
)
def test_bad_value_names_its_source_and_value(
    argv: list[str], env: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _build(argv, env)
    message = str(info.value)
    for name in names:
        assert name in message
    assert "\n" not in message
    assert info.value.retriable is False


def test_bad_flag_value_is_reported_even_when_environment_is_good() -> None:
    with pytest.raises(ConfigError, match="--rate"):
        _build(["--rate", "abc"], {"MARKETFEED_RATE": "100"})


def test_bad_code_override_is_checked() -> None:
    with pytest.raises(ConfigError, match="rate"):
        build(PublisherConfig, environ={}, rate=-1.0)


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--rate", "inf"], {}, ["--rate", "inf"]),
        (["--rate=-inf"], {}, ["--rate", "-inf"]),
        (["--rate", "Infinity"], {}, ["--rate", "inf"]),
        ([], {"MARKETFEED_RATE": "inf"}, ["MARKETFEED_RATE", "inf"]),
        ([], {"MARKETFEED_RATE": "nan"}, ["MARKETFEED_RATE", "nan"]),
        (["--duration", "inf"], {}, ["--duration", "inf"]),
        ([], {"MARKETFEED_CONNECT_TIMEOUT": "inf"}, ["MARKETFEED_CONNECT_TIMEOUT", "inf"]),
    ],
)
def test_non_finite_numbers_are_refused(
    argv: list[str], env: dict[str, str], names: list[str]
) -> None:
    # Pacer(rate=inf).due() would raise deep inside the publisher instead of a one-line error.
    with pytest.raises(ConfigError, match="finite") as info:
        _build(argv, env)
    message = str(info.value)
    for name in names:
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_code_override_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="rate"):
        build(PublisherConfig, environ={}, rate=value)


def test_large_finite_rate_is_accepted() -> None:
    assert _build(["--rate", "1e9"]).rate == 1e9
    assert positive(1e308) is None
    assert positive(5) is None


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--log-level", "LOUD"], {}, ["--log-level", "LOUD"]),
        ([], {"MARKETFEED_LOG_LEVEL": "verbose"}, ["MARKETFEED_LOG_LEVEL", "verbose"]),
        (["--log-level", ""], {}, ["--log-level"]),
        (["--log-level", "10"], {}, ["--log-level", "10"]),
    ],
)
def test_unknown_log_level_is_refused(
    argv: list[str], env: dict[str, str], names: list[str]
) -> None:
    # setup_logging() would otherwise raise ValueError: a traceback, not exit code 2.
    with pytest.raises(ConfigError, match="must be one of") as info:
        _build(argv, env)
    message = str(info.value)
    for name in names:
        assert name in message
    assert "INFO" in message
    assert "\n" not in message


@pytest.mark.parametrize("level", ["DEBUG", "info", "Warning", "ERROR", "critical"])
def test_known_log_levels_are_accepted_in_any_case(level: str) -> None:
    config = _build(["--log-level", level])
    assert config.log_level == level
    # What passed the check is what setup_logging() hands to logging.
    assert isinstance(logging.getLevelName(config.log_level.upper()), int)


# --- the dataclass ----------------------------------------------------------------------------


def test_config_is_frozen() -> None:
    config = build(PublisherConfig, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rate = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bootstrap = "x:1"  # type: ignore[misc]
    assert config.rate == 5000.0


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        PublisherConfig("127.0.0.1:9092")  # type: ignore[misc]


def test_help_names_flags_and_environment_variables() -> None:
    text = _parser().format_help()
    for expected in ("--rate", "MARKETFEED_RATE", "--idempotence", "--no-idempotence", "HOST:PORT"):
        assert expected in text


def test_add_arguments_does_not_set_defaults() -> None:
    # Flags not given stay out of the namespace, so the environment can apply.
    assert vars(_parser().parse_args([])) == {}


# --- OneLineParser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bogus"], "--bogus"),
        (["--rate"], "--rate"),
        (["positional"], "positional"),
    ],
)
def test_usage_error_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == EXIT_USAGE == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.endswith("\n")
    assert err.startswith("feed_publisher: ")
    assert needle in err


def test_one_line_parser_is_an_argparse_parser() -> None:
    parser = OneLineParser(prog="x")
    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_argument("--n", type=int)
    assert parser.parse_args(["--n", "3"]).n == 3


# --- to_argv: launching a child from its config -----------------------------------------------


def _configs() -> list[object]:
    from order_entry.config import OrderEntryConfig
    from portfolio.config import PortfolioConfig

    return [
        PublisherConfig(),
        PublisherConfig(seed=7, duration=1.5, rate=123.25, idempotence=True, snapshots=False),
        PublisherConfig(topic_prefix="-dash.", bootstrap="127.0.0.1:1,127.0.0.1:2"),
        OrderEntryConfig(tradable=("AAAA", "BRK.B"), ledger_url="redis://127.0.0.1:7/1"),
        OrderEntryConfig(tradable_file=None, ledger_prefix=None),
        PortfolioConfig(watchlist=(), evict_after=0.0),
    ]


@pytest.mark.parametrize("config", _configs())
def test_to_argv_builds_back_the_same_config(config: object) -> None:
    from common.config import to_argv, to_env

    cls = type(config)
    parser = OneLineParser(prog="child")
    add_arguments(parser, cls)
    assert build(cls, parser.parse_args(to_argv(config)), environ=to_env(config)) == config


def test_to_argv_wins_over_an_inherited_environment() -> None:
    from common.config import to_argv

    config = PublisherConfig()  # every default, written out
    env = {"MARKETFEED_RATE": "9", "MARKETFEED_SEED": "3", "MARKETFEED_SNAPSHOTS": "false"}
    assert build(PublisherConfig, _parser().parse_args(to_argv(config)), environ=env) == config


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _WithSecret(KafkaSettings):
    password: str | None = setting(None, help="a password", secret=True)


def test_secrets_go_to_the_environment_never_the_command_line() -> None:
    from common.config import to_argv, to_env

    config = _WithSecret(password="s3cret", sasl_password="pw2")
    argv = to_argv(config)
    assert not [a for a in argv if "s3cret" in a or "pw2" in a or "-password=" in a]
    env = to_env(config)
    assert env == {"MARKETFEED_PASSWORD": "s3cret", "MARKETFEED_SASL_PASSWORD": "pw2"}
    parser = OneLineParser(prog="child")
    add_arguments(parser, _WithSecret)
    assert build(_WithSecret, parser.parse_args(argv), environ=env) == config
    # None too: a variable the child inherits must not stand in for it.
    assert to_env(_WithSecret()) == {
        "MARKETFEED_PASSWORD": "none",
        "MARKETFEED_SASL_PASSWORD": "none",
    }
    assert build(_WithSecret, environ={"MARKETFEED_PASSWORD": "none"}) == _WithSecret()


def test_a_secret_comes_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    """MARKETFEED_<NAME>_FILE (how compose.yaml passes Redis URLs and passwords): the first line
    of the file; the variable itself wins; a setting with a ``<name>_file`` of its own (the
    SASL password, the feed key) has no second way."""
    url = tmp_path / "redis-url"
    url.write_text("redis://:pw-from-file@cache:6379/0\nignored second line\n")
    env = {"MARKETFEED_PASSWORD_FILE": str(url)}
    assert build(_WithSecret, environ=env).password == "redis://:pw-from-file@cache:6379/0"
    env["MARKETFEED_PASSWORD"] = "from-variable"
    assert build(_WithSecret, environ=env).password == "from-variable"
    # sasl_password has --sasl-password-file: MARKETFEED_SASL_PASSWORD_FILE is that setting's.
    built = build(_WithSecret, environ={"MARKETFEED_SASL_PASSWORD_FILE": str(url)})
    assert built.sasl_password is None
    assert built.sasl_password_file == url
    parser = OneLineParser(prog="p")
    add_arguments(parser, _WithSecret)
    assert "MARKETFEED_PASSWORD or MARKETFEED_PASSWORD_FILE" in " ".join(
        parser.format_help().split()
    )


def test_an_unreadable_secret_file_is_one_line_without_the_secret(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        build(_WithSecret, environ={"MARKETFEED_PASSWORD_FILE": str(missing)})
    assert str(caught.value) == (
        f"MARKETFEED_PASSWORD_FILE={missing}: cannot read it: No such file or directory"
    )
