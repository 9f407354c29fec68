"""Symbol lists given by users: inline (``A,B,C``) or in a file (one per line, ``#`` comments)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common.errors import ConfigError, SchemaError
from common.schema import check_symbol


def parse_symbols(values: Iterable[str], *, source: str) -> list[str]:
    """Validate ``values`` as symbols; the first bad one is a ConfigError naming ``source``."""
    out = []
    for value in values:
        try:
            out.append(check_symbol(value))
        except SchemaError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return out


def load_symbols(inline: Iterable[str], path: Path | None, *, flag: str) -> frozenset[str]:
    symbols = parse_symbols(inline, source=flag)
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{flag}-file={path}: {exc.strerror}") from None
        cleaned = (line.split("#", 1)[0].strip() for line in lines)
        symbols += parse_symbols((c for c in cleaned if c), source=f"{flag}-file={path}")
    return frozenset(symbols)
