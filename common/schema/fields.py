"""Field readers shared by every message type: each one checks a type and a domain.

Decoding is strict on purpose: a consumer in another language must be able to rely on the types
documented in the README, and a bad value must be caught at the edge (and dead-lettered), not
deep inside a cache or a P&L calculation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from common.errors import DecodeError, ValidationError

SYMBOL_MAX_LEN = 16
# Upper-case tickers with the usual class/venue separators (BRK.B, BF-B, EUR/USD).
_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9._/\-]*")


def check_symbol(value: object) -> str:
    """Return ``value`` if it is a well-formed symbol, else raise ValidationError."""
    if not isinstance(value, str):
        raise DecodeError(f"symbol must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError("symbol is empty")
    if len(value) > SYMBOL_MAX_LEN:
        raise ValidationError(f"symbol {value[:20]!r}... is longer than {SYMBOL_MAX_LEN}")
    if _SYMBOL_RE.fullmatch(value) is None:
        raise ValidationError(f"symbol {value!r} has characters outside [A-Z0-9._/-]")
    return value


def get(raw: Mapping[str, Any], name: str) -> object:
    try:
        return raw[name]
    except KeyError:
        raise DecodeError(f"missing field {name!r}") from None


def get_int(raw: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    value = get(raw, name)
    # bool is an int in Python and in some msgpack encoders; it is never a valid count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(f"field {name!r} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValidationError(f"field {name!r} must be >= {minimum}, got {value}")
    return value


def check_price(name: str, value: object) -> float:
    # Integers are accepted: encoders in other languages write 100.0 as the integer 100.
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DecodeError(f"field {name!r} must be a number, got {type(value).__name__}")
    price = float(value)
    if not math.isfinite(price):
        raise ValidationError(f"field {name!r} is not finite: {price}")
    if price <= 0.0:
        raise ValidationError(f"field {name!r} must be positive, got {price}")
    return price


def get_price(raw: Mapping[str, Any], name: str) -> float:
    return check_price(name, get(raw, name))


def get_str(raw: Mapping[str, Any], name: str, *, max_len: int = 64) -> str:
    value = get(raw, name)
    if not isinstance(value, str):
        raise DecodeError(f"field {name!r} must be a string, got {type(value).__name__}")
    if not value or len(value) > max_len:
        raise ValidationError(f"field {name!r} must have 1..{max_len} characters")
    return value


def get_choice(raw: Mapping[str, Any], name: str, choices: frozenset[str]) -> str:
    value = get_str(raw, name)
    if value not in choices:
        raise ValidationError(f"field {name!r} must be one of {sorted(choices)}, got {value!r}")
    return value
