"""Snapshot request/response: a cache asks the publisher for last values and where they stand.

A request names the symbols and the topic to reply on; the reply carries, for each symbol the
publisher knows, its last acknowledged quote (the exact bytes that were published), and for each
quote partition the offset right after the last record those values include. A cache writes the
quotes and continues consuming from exactly those offsets. A large reply is split in parts; every
part carries the same offsets. On a broker where market data is written as generations
(``common.generations``), ``generations`` names the generation each partition's offset is in (a
partition may be one generation ahead of its neighbour while the publisher rolls); a partition
it does not name is in generation 0, the plain topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from common.errors import DecodeError, ValidationError
from common.schema.codec import SCHEMA_VERSION, pack
from common.schema.fields import check_symbol, get, get_int, get_str

SNAPSHOT_REQUEST_TYPE = "snapshot_request"
SNAPSHOT_REPLY_TYPE = "snapshot_reply"
# Keeps each reply record far below Kafka's default 1 MB message limit (a quote is ~130 bytes).
MAX_QUOTES_PER_PART = 2000
MAX_SYMBOLS_PER_REQUEST = 500_000


def _get_list(raw: Mapping[str, Any], name: str) -> list[Any]:
    value = get(raw, name)
    if not isinstance(value, list):
        raise DecodeError(f"field {name!r} must be an array, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRequest:
    TYPE: ClassVar[str] = SNAPSHOT_REQUEST_TYPE

    request_id: str
    reply_to: str
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.request_id or not self.reply_to:
            raise ValidationError("snapshot request needs a request_id and a reply_to topic")
        if len(self.symbols) > MAX_SYMBOLS_PER_REQUEST:
            raise ValidationError(
                f"snapshot request for more than {MAX_SYMBOLS_PER_REQUEST} symbols"
            )
        for symbol in self.symbols:
            check_symbol(symbol)

    def encode(self) -> bytes:
        return pack(
            {
                "v": SCHEMA_VERSION,
                "type": self.TYPE,
                "request_id": self.request_id,
                "reply_to": self.reply_to,
                "symbols": list(self.symbols),
            }
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> SnapshotRequest:
        return cls(
            request_id=get_str(raw, "request_id"),
            reply_to=get_str(raw, "reply_to", max_len=249),
            symbols=tuple(check_symbol(s) for s in _get_list(raw, "symbols")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotReply:
    TYPE: ClassVar[str] = SNAPSHOT_REPLY_TYPE

    request_id: str
    epoch: int
    part: int
    parts: int
    # Each item is one encoded Quote, byte for byte as it was published.
    quotes: tuple[bytes, ...]
    # (partition, next offset): everything before it is reflected in the quotes.
    offsets: tuple[tuple[int, int], ...]
    missing: tuple[str, ...] = ()
    # (partition, generation) of each offset; absent: generation 0 (the plain topic).
    generations: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.part < self.parts:
            raise ValidationError(f"snapshot part {self.part} outside 0..{self.parts - 1}")
        for partition, offset in (*self.offsets, *self.generations):
            if partition < 0 or offset < 0:
                raise ValidationError("snapshot offsets and generations must be >= 0")

    def encode(self) -> bytes:
        return pack(
            {
                "v": SCHEMA_VERSION,
                "type": self.TYPE,
                "request_id": self.request_id,
                "epoch": self.epoch,
                "part": self.part,
                "parts": self.parts,
                "quotes": list(self.quotes),
                "offsets": [[p, o] for p, o in self.offsets],
                "missing": list(self.missing),
                "generations": [[p, g] for p, g in self.generations],
            }
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> SnapshotReply:
        quotes = _get_list(raw, "quotes")
        if not all(isinstance(q, bytes) for q in quotes):
            raise DecodeError("snapshot quotes must be binary")
        return cls(
            request_id=get_str(raw, "request_id"),
            epoch=get_int(raw, "epoch"),
            part=get_int(raw, "part"),
            parts=get_int(raw, "parts", minimum=1),
            quotes=tuple(quotes),
            offsets=_int_pairs(_get_list(raw, "offsets"), "[partition, offset]"),
            missing=tuple(check_symbol(s) for s in _get_list(raw, "missing")),
            generations=_int_pairs(
                _get_list(raw, "generations") if "generations" in raw else [],
                "[partition, generation]",
            ),
        )


def _int_pairs(items: list[Any], shape: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for pair in items:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
            raise DecodeError(f"snapshot pairs must be {shape} integer pairs")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)
