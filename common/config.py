"""Typed configuration: frozen dataclasses read from ``MARKETFEED_*`` variables and CLI flags.

Each service declares its settings once, as dataclass fields made with :func:`setting`. From that
one declaration come the command-line flag (``--field-name``), the environment variable
(``MARKETFEED_FIELD_NAME``), the ``--help`` text, the parsing and the validation, so the three
can never disagree. Precedence: flag, then environment, then default. A bad value raises
ConfigError with one line naming the flag, the variable and the value.

A secret setting can also come from a file named by ``MARKETFEED_<NAME>_FILE`` (the convention of
container images, where secrets are mounted as files): ``MARKETFEED_REDIS_URL_FILE=/run/secrets/
order-entry.redis-url`` keeps the password out of the environment of every process, out of
``docker inspect`` and out of compose.yaml. The variable itself wins over the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from common.errors import ConfigError
from common.logs import redact_url

ENV_PREFIX = "MARKETFEED_"

Check = Callable[[Any], str | None]
C = TypeVar("C")


def setting(
    default: Any,
    *,
    help: str,
    check: Check | None = None,
    metavar: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting: its default, its help text and an optional check.

    ``check`` returns None for a good value or a short reason ("must be > 0") for a bad one.
    A ``secret`` (a password) never goes on a child's command line, where every user of the
    machine can read it (``/proc/PID/cmdline``): :func:`to_env` passes it instead.
    """
    return dataclasses.field(
        default=default,
        metadata={"help": help, "check": check, "metavar": metavar, "secret": secret},
    )


def positive(value: Any) -> str | None:
    # NaN compares false to everything; inf would pass "> 0" and break arithmetic downstream.
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number > 0"
    return None if value > 0 else "must be > 0"


def known_log_level(value: Any) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    return None if str(value).upper() in levels else f"must be one of {', '.join(levels)}"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def in_range(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def all_positive(values: Any) -> str | None:
    if not values:
        return "must list at least one value"
    return None if all(v > 0 for v in values) else "every value must be > 0"


def bootstrap_servers(value: Any) -> str | None:
    """Check a comma-separated list of ``host:port``."""
    for part in str(value).split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return "must be host:port[,host:port...]"
    return None


def redis_url(value: Any) -> str | None:
    """A URL redis-py can connect with: ``redis[s]://[[user]:password@]host[:port][/db]``
    (``?ssl_ca_certs=PATH`` etc. for TLS) or ``unix://PATH``; checked here rather than when
    the first command fails deep inside redis-py."""
    if value is None:
        return None
    text = str(value)
    usage = "must be a redis[s]://[[user]:password@]host[:port][/db] or unix://PATH URL"
    if not text.startswith(("redis://", "rediss://", "unix://")):
        return usage
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- it raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"{usage} ({exc})"
    if text.startswith("unix://"):
        return None if parts.path else usage
    if not parts.hostname:
        return f"{usage} (no host)"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"{usage} (the database must be a number, not {db!r})"
    return None


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add one flag per setting of ``cls`` to ``parser``; help names the variable and default."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or "help" not in f.metadata:
            continue
        base = _base_type(hints[f.name])
        default = _shown(f, f.default)
        names = env_name(f.name)
        if (from_file := _file_env(cls, f)) is not None:
            names += f" or {from_file}"
        text = f"{f.metadata['help']} [env {names}; default {default}]"
        if base is bool:
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
        else:
            # Parsed by build(), not argparse, so flag and env values fail with the same words.
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                default=argparse.SUPPRESS,
                metavar=f.metadata.get("metavar") or f.name.upper(),
                help=text,
            )


def build(
    cls: type[C],
    args: argparse.Namespace | Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> C:
    """Build ``cls`` from flags (``args``), then ``environ``, then defaults.

    ``overrides`` are typed values from code (they win over everything); flag and environment
    values are strings and are parsed here.
    """
    environ = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        source: str
        secret = {"secret": bool(f.metadata.get("secret")) and not _is_url(f.name)}
        if f.name in overrides:
            value, source = overrides[f.name], f.name
        elif f.name in given and "help" in f.metadata:
            raw, source = given[f.name], flag_name(f.name)
            value = (
                raw if not isinstance(raw, str) else _parse(hints[f.name], raw, source, **secret)
            )
        elif env_name(f.name) in environ and "help" in f.metadata:
            source = env_name(f.name)
            value = _parse(hints[f.name], environ[env_name(f.name)], source, **secret)
        elif (source := _file_env(cls, f) or "") in environ and "help" in f.metadata:
            value = _parse(hints[f.name], _read_secret(environ[source], source), source, **secret)
        else:
            continue
        check: Check | None = f.metadata.get("check")
        if check is not None and value is not None:
            reason = check(value)
            if reason is not None:
                raise ConfigError(f"{source}={_shown(f, value)}: {reason}")
        values[f.name] = value
    return cls(**values)


def to_argv(config: Any) -> list[str]:
    """The flags that :func:`build` turns back into ``config``: how a child is launched from it.

    Every setting is written, defaults included, so that the child gets exactly ``config``
    whatever ``MARKETFEED_*`` variables it inherits (flags win over the environment). Secret
    settings are left out: see :func:`to_env`.
    """
    argv: list[str] = []
    for f in _settings(config):
        if f.metadata.get("secret"):
            continue
        value = getattr(config, f.name)
        flag = flag_name(f.name)
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        else:
            # --flag=VALUE, so that a value starting with "-" is not taken for a flag.
            argv.append(f"{flag}={_wire(value)}")
    return argv


def to_env(config: Any) -> dict[str, str]:
    """The secret settings of ``config`` as the environment variables a child reads them from.

    Every one, None too ("none"): a variable the child inherits must not stand in for it.
    """
    return {
        env_name(f.name): _wire(getattr(config, f.name))
        for f in _settings(config)
        if f.metadata.get("secret")
    }


def secret_environ(cls: type[Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Only the variables of ``cls``'s secret settings: for a child that takes every other
    setting from its flags alone (a benchmark's), yet gets its secrets by environment."""
    environ = os.environ if environ is None else environ
    secrets = [f for f in dataclasses.fields(cls) if f.metadata.get("secret")]
    names = {env_name(f.name) for f in secrets} | {_file_env(cls, f) for f in secrets}
    return {k: v for k, v in environ.items() if k in names}


def _file_env(cls: type[Any], f: dataclasses.Field[Any]) -> str | None:
    """The variable naming a file that holds secret setting ``f``, if it can have one: not when
    the class declares a ``<name>_file`` setting of its own (``--feed-key-file``, whose
    variable is that very name)."""
    if not f.metadata.get("secret"):
        return None
    if any(g.name == f"{f.name}_file" for g in dataclasses.fields(cls)):
        return None
    return env_name(f.name) + "_FILE"


def _read_secret(path: str, source: str) -> str:
    """The first line of a secret's file: one line naming the file if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ConfigError(f"{source}={path}: cannot read it: {why}") from None


def _settings(config: Any) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(config) if f.init and "help" in f.metadata]


def _wire(value: Any) -> str:
    """A value as build() parses it back: tuples comma-joined, None as "none"."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; anything else unchanged."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _parse(hint: Any, raw: str, source: str, *, secret: bool = False) -> Any:
    optional = type(None) in get_args(hint)
    base = _base_type(hint)
    text = raw.strip()
    if optional and text.lower() in ("", "none"):
        return None
    try:
        if base is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base is int:
            return int(text.replace("_", ""))
        if base is float:
            return float(text)
        if base is Path:
            return Path(text).expanduser()
        if get_origin(base) is tuple:
            item = get_args(base)[0]
            return tuple(
                item(p.strip().replace("_", "") if item is int else p.strip())
                for p in text.split(",")
                if p.strip()
            )
        if base is str:
            return text
    except ValueError:
        kind = getattr(base, "__name__", str(base))
        shown = "***" if secret else repr(redact_url(raw))
        raise ConfigError(f"{source}={shown}: not a valid {kind}") from None
    raise TypeError(f"unsupported setting type {hint!r} for {source}")


def _shown(f: dataclasses.Field[Any], value: Any) -> str:
    """A setting's value as a message or ``--help`` shows it: never a secret."""
    if f.metadata.get("secret") and value is not None and not _is_url(f.name):
        return "***"  # a password itself; a URL shows with its password masked
    return redact_url(_show(value))


def _is_url(name: str) -> bool:
    return name.endswith("_url")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    return str(value)
