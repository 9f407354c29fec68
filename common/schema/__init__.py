"""The marketfeed wire format: every message type, its encoding and its validation.

This package is the only contract between the services. Each message type is a frozen,
typed dataclass with ``encode()`` and ``from_wire()``; :func:`decode` reads any of them.
The README documents every field so that a client in another language can decode it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from common.errors import DecodeError
from common.schema.codec import SCHEMA_VERSION, SUPPORTED_VERSIONS, pack, unpack
from common.schema.deadletter import DEAD_LETTER_TYPE, DeadLetter
from common.schema.fields import SYMBOL_MAX_LEN, check_symbol
from common.schema.market import QUOTE_TYPE, TRADE_TYPE, Quote, Trade, quote_wire, trade_wire
from common.schema.orders import (
    NEW_ORDER_TYPE,
    ORDER_ACCEPTED_TYPE,
    ORDER_CANCELLED_TYPE,
    ORDER_FILLED_TYPE,
    ORDER_REJECTED_TYPE,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    TerminalEvent,
)
from common.schema.rollover import ROLLOVER_KEY, ROLLOVER_TYPE, Rollover
from common.schema.snapshot import (
    MAX_QUOTES_PER_PART,
    SNAPSHOT_REPLY_TYPE,
    SNAPSHOT_REQUEST_TYPE,
    SnapshotReply,
    SnapshotRequest,
)

M = TypeVar("M")

Message = (
    Quote
    | Trade
    | SnapshotRequest
    | SnapshotReply
    | Rollover
    | DeadLetter
    | NewOrder
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelled
)

_READERS: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    QUOTE_TYPE: Quote.from_wire,
    TRADE_TYPE: Trade.from_wire,
    SNAPSHOT_REQUEST_TYPE: SnapshotRequest.from_wire,
    SNAPSHOT_REPLY_TYPE: SnapshotReply.from_wire,
    ROLLOVER_TYPE: Rollover.from_wire,
    DEAD_LETTER_TYPE: DeadLetter.from_wire,
    NEW_ORDER_TYPE: NewOrder.from_wire,
    ORDER_ACCEPTED_TYPE: OrderAccepted.from_wire,
    ORDER_REJECTED_TYPE: OrderRejected.from_wire,
    ORDER_FILLED_TYPE: OrderFilled.from_wire,
    ORDER_CANCELLED_TYPE: OrderCancelled.from_wire,
}


def decode(data: bytes) -> Message:
    """Decode and validate one message of any type; raise a SchemaError subclass if bad."""
    kind, raw = unpack(data)
    reader = _READERS.get(kind)
    if reader is None:
        raise DecodeError(f"unknown message type {kind!r}")
    return reader(raw)


def decode_as(data: bytes, kind: type[M]) -> M:
    """Decode a message that must be of type ``kind`` (as on a topic that carries one type)."""
    message = decode(data)
    if not isinstance(message, kind):
        raise DecodeError(f"expected a {kind.__name__}, got a {type(message).__name__}")
    return message


def decode_quote(data: bytes) -> Quote:
    """Decode a message that must be a Quote (as on the quotes topic)."""
    return decode_as(data, Quote)


__all__ = [
    "QUOTE_TYPE",
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "SYMBOL_MAX_LEN",
    "TRADE_TYPE",
    "DeadLetter",
    "MAX_QUOTES_PER_PART",
    "ROLLOVER_KEY",
    "Rollover",
    "Message",
    "SnapshotReply",
    "SnapshotRequest",
    "decode_as",
    "Quote",
    "Trade",
    "check_symbol",
    "decode",
    "decode_quote",
    "pack",
    "quote_wire",
    "trade_wire",
    "NewOrder",
    "OrderAccepted",
    "OrderCancelled",
    "OrderEvent",
    "OrderFilled",
    "OrderRejected",
    "TerminalEvent",
]
