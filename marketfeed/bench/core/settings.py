"""The settings every benchmark has, and the checks of rate lists and output directories.

:class:`BenchSettings` declares once what each benchmark would otherwise repeat: the simulated
market, the step lengths, the servers (embedded unless given), the output directory and
``--smoke``. A benchmark extends it with its own settings and its smoke preset, a typed
``replace()`` that mypy checks field by field. Every bad value is refused before anything
starts, with one line naming the flag (exit 2), including an output directory that could not
be written at the end of a long run.

Light on purpose: the command line imports this to build its parser, before any benchmark runs.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from common.config import (
    bootstrap_servers,
    known_log_level,
    non_negative,
    positive,
    redis_url,
    setting,
)
from common.errors import ConfigError
from feed_publisher.universe import MAX_SYMBOLS


def parse_rates(values: Sequence[str]) -> tuple[float | None, ...]:
    """``("1000", "max")`` -> ``(1000.0, None)``; None is unthrottled (or a closed loop)."""
    rates: list[float | None] = []
    for value in values:
        text = value.strip().lower()
        if text == "max":
            rates.append(None)
            continue
        try:
            rate = float(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"--rates: {value!r} is not a number or max") from None
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"--rates: {value!r}: every rate must be > 0 (or max)")
        rates.append(rate)
    return tuple(rates)


def rate_list(values: Any) -> str | None:
    """The check of a setting that lists the rate of each step."""
    if not values:
        return "must list at least one rate"
    try:
        parse_rates(values)
    except ConfigError as exc:
        # build() names the flag itself: the words after parse_rates' own are the reason.
        return str(exc).removeprefix("--rates: ")
    return None


def rate_label(rate: float | None) -> str:
    """How a step is named in progress lines and reports: "1,000", or "max"."""
    return "max" if rate is None else f"{rate:,.0f}"


def symbol_count(value: Any) -> str | None:
    return None if 0 < value <= MAX_SYMBOLS else f"must be between 1 and {MAX_SYMBOLS}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchSettings:
    """What every benchmark is configured with; each extends it (a frozen dataclass too)."""

    symbols: int = setting(1000, help="number of simulated symbols", check=symbol_count)
    partitions: int = setting(16, help="partitions of every topic it creates", check=positive)
    duration: float = setting(10.0, help="seconds each step is measured", check=positive)
    warmup: float = setting(
        3.0,
        help="seconds each step runs at its rate (processes started) before it is measured",
        check=non_negative,
    )
    fetch_max_wait_ms: int = setting(
        5,
        help="fetch_max_wait_ms of the consumers it measures and of its own",
        check=positive,
    )
    out: Path | None = setting(
        None, help="write results.json, the report's files and the logs to this directory"
    )
    bootstrap: str | None = setting(
        None,
        help="use this broker instead of an embedded one",
        check=bootstrap_servers,
        metavar="HOST:PORT",
    )
    redis_url: str | None = setting(
        None,
        help="use this Redis (keys under the run's prefix, removed after) instead of embedded ones",
        check=redis_url,
        secret=True,
    )
    seed: int = setting(1, help="random seed of the simulated market")
    connect_timeout: float = setting(
        10.0, help="seconds to keep retrying an unreachable broker", check=positive
    )
    smoke: bool = setting(
        False,
        help="a run of seconds for CI that still produces every figure: fewer symbols, lower "
        "rates, shorter steps (these override the flags)",
    )
    log_level: str = setting(
        "WARNING", help="log level (also of every child process)", check=known_log_level
    )

    def effective(self) -> Self:
        """These settings as the run uses them: the smoke preset applied, then checked."""
        config = self.smoke_preset() if self.smoke else self
        config.check()
        return config

    def smoke_preset(self) -> Self:
        """These settings with the benchmark's ``--smoke`` values in place."""
        raise NotImplementedError

    def check(self) -> None:
        """Refuse settings that are fine one by one but not together (ConfigError)."""


def prepare_out(path: Path) -> None:
    """Fail now, with one line, if the results could not be written at the end."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there: {exc.strerror or exc}") from None
