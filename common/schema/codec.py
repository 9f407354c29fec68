"""msgpack framing: the schema version and the message type tag, shared by every message.

Every message on every marketfeed topic is one msgpack map with string keys. Two keys are
common to all: ``v`` (the schema version, an integer) and ``type`` (a string naming the message
type). The remaining keys depend on the type and are documented in the README.
"""

from __future__ import annotations

from typing import Any

import msgpack

from common.errors import DecodeError, ValidationError

SCHEMA_VERSION = 1
# Versions this code can read. A newer major version is refused rather than half-understood.
SUPPORTED_VERSIONS = frozenset({1})


def pack(fields: dict[str, Any]) -> bytes:
    out: bytes = msgpack.packb(fields, use_bin_type=True)
    return out


def unpack(data: bytes) -> tuple[str, dict[str, Any]]:
    """Decode the msgpack map in ``data``; return its type tag and the map.

    Raises DecodeError for bytes that are not one msgpack map of string keys, and
    ValidationError for a version this code does not support.
    """
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        # UnpackValueError/ExtraData derive from ValueError; a bad UTF-8 key raises ValueError.
        raise DecodeError(f"not a msgpack message: {exc}") from None
    if not isinstance(raw, dict):
        raise DecodeError(f"message must be a msgpack map, got {type(raw).__name__}")
    version = raw.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError("missing or non-integer schema version 'v'")
    if version not in SUPPORTED_VERSIONS:
        raise ValidationError(f"unsupported schema version {version}")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise DecodeError("missing or non-string message 'type'")
    return kind, raw
