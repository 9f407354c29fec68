"""Order messages: the NewOrder command and the domain events order_entry answers it with.

``order.new`` travels on ``orders.commands``; ``order.accepted``, ``order.rejected``,
``order.filled`` and ``order.cancelled`` travel on ``orders.events``. Both topics are keyed by
symbol and co-partitioned with the quotes, so the process that owns an order partition also
owns the quote partition it validates against. ``order_id`` is the correlation id: a client
waits for the event that carries its own id.

Every command gets exactly one *terminal* event (rejected, filled or cancelled); accepted is
informational and always precedes a fill or a cancel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from common.errors import DecodeError, ValidationError
from common.schema.codec import SCHEMA_VERSION, pack
from common.schema.fields import check_price, check_symbol, get, get_choice, get_int, get_str


class OrderKind(StrEnum):
    """The ``type`` of an order message, these exact strings on the wire."""

    NEW = "order.new"
    ACCEPTED = "order.accepted"
    REJECTED = "order.rejected"
    FILLED = "order.filled"
    CANCELLED = "order.cancelled"


NEW_ORDER_TYPE = OrderKind.NEW
ORDER_ACCEPTED_TYPE = OrderKind.ACCEPTED
ORDER_REJECTED_TYPE = OrderKind.REJECTED
ORDER_FILLED_TYPE = OrderKind.FILLED
ORDER_CANCELLED_TYPE = OrderKind.CANCELLED

ORDER_SIDES = frozenset({"B", "S"})
ORDER_ID_MAX_LEN = 64
ACCOUNT_MAX_LEN = 64

# Reason codes of OrderRejected: stable strings a client can switch on (the text is for people).
REJECT_MALFORMED = "MALFORMED"
REJECT_UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
REJECT_QTY_TOO_LARGE = "QTY_TOO_LARGE"
REJECT_LIMIT_OUT_OF_BAND = "LIMIT_OUT_OF_BAND"
REJECT_NO_QUOTE = "NO_QUOTE"
REJECT_STALE_QUOTE = "STALE_QUOTE"
REJECT_REASONS = frozenset(
    {
        REJECT_MALFORMED,
        REJECT_UNKNOWN_SYMBOL,
        REJECT_QTY_TOO_LARGE,
        REJECT_LIMIT_OUT_OF_BAND,
        REJECT_NO_QUOTE,
        REJECT_STALE_QUOTE,
    }
)


def _check_id(name: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise ValidationError(f"field {name!r} must have 1..{max_len} characters")


def _header(kind: str, order_id: str, symbol: str, ts_ns: int) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": kind,
        "order_id": order_id,
        "symbol": symbol,
        "ts_ns": ts_ns,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrder:
    """A client's order: buy or sell ``qty`` of ``symbol``, at market or with a limit (IOC)."""

    TYPE: ClassVar[OrderKind] = NEW_ORDER_TYPE

    order_id: str
    account: str
    symbol: str
    side: str
    qty: int
    limit: float | None
    ts_ns: int

    def __post_init__(self) -> None:
        _check_id("order_id", self.order_id, ORDER_ID_MAX_LEN)
        _check_id("account", self.account, ACCOUNT_MAX_LEN)
        check_symbol(self.symbol)
        if self.side not in ORDER_SIDES:
            raise ValidationError(f"order side must be B or S, got {self.side!r}")
        if self.qty <= 0:
            raise ValidationError(f"field 'qty' must be > 0, got {self.qty}")
        if self.limit is not None:
            check_price("limit", self.limit)
        if self.ts_ns <= 0:
            raise ValidationError("field 'ts_ns' must be positive")

    def encode(self) -> bytes:
        return pack(
            _header(self.TYPE, self.order_id, self.symbol, self.ts_ns)
            | {"account": self.account, "side": self.side, "qty": self.qty, "limit": self.limit}
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> NewOrder:
        # Optional on the wire: a market order from another client may simply leave it out.
        limit = raw.get("limit")
        return cls(
            order_id=get_str(raw, "order_id", max_len=ORDER_ID_MAX_LEN),
            account=get_str(raw, "account", max_len=ACCOUNT_MAX_LEN),
            symbol=check_symbol(get(raw, "symbol")),
            side=get_choice(raw, "side", ORDER_SIDES),
            qty=get_int(raw, "qty", minimum=1),
            limit=None if limit is None else check_price("limit", limit),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted:
    """The order passed validation; a fill or a cancel follows."""

    TYPE: ClassVar[OrderKind] = ORDER_ACCEPTED_TYPE

    order_id: str
    account: str
    symbol: str
    side: str
    qty: int
    ts_ns: int

    def __post_init__(self) -> None:
        _check_id("order_id", self.order_id, ORDER_ID_MAX_LEN)
        check_symbol(self.symbol)

    def encode(self) -> bytes:
        return pack(
            _header(self.TYPE, self.order_id, self.symbol, self.ts_ns)
            | {"account": self.account, "side": self.side, "qty": self.qty}
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> OrderAccepted:
        return cls(
            order_id=get_str(raw, "order_id", max_len=ORDER_ID_MAX_LEN),
            account=get_str(raw, "account", max_len=ACCOUNT_MAX_LEN),
            symbol=check_symbol(get(raw, "symbol")),
            side=get_choice(raw, "side", ORDER_SIDES),
            qty=get_int(raw, "qty", minimum=1),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected:
    """Terminal: the order was not executed. ``symbol`` is "" when the command had none readable."""

    TYPE: ClassVar[OrderKind] = ORDER_REJECTED_TYPE

    order_id: str
    symbol: str
    reason: str  # one of REJECT_REASONS
    text: str
    ts_ns: int

    def __post_init__(self) -> None:
        _check_id("order_id", self.order_id, ORDER_ID_MAX_LEN)
        if self.symbol:
            check_symbol(self.symbol)
        if self.reason not in REJECT_REASONS:
            raise ValidationError(f"unknown reject reason {self.reason!r}")

    def encode(self) -> bytes:
        return pack(
            _header(self.TYPE, self.order_id, self.symbol, self.ts_ns)
            | {"reason": self.reason, "text": self.text}
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> OrderRejected:
        symbol = get(raw, "symbol")
        if not isinstance(symbol, str):
            raise DecodeError("field 'symbol' must be a string")
        text = get(raw, "text")
        if not isinstance(text, str):
            raise DecodeError("field 'text' must be a string")
        return cls(
            order_id=get_str(raw, "order_id", max_len=ORDER_ID_MAX_LEN),
            symbol=symbol,
            reason=get_choice(raw, "reason", REJECT_REASONS),
            text=text,
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled:
    """Terminal: all of ``qty`` executed at ``price`` (the cached ask for a buy, bid for a sell)."""

    TYPE: ClassVar[OrderKind] = ORDER_FILLED_TYPE

    order_id: str
    account: str
    symbol: str
    side: str
    qty: int
    price: float
    ts_ns: int

    def __post_init__(self) -> None:
        _check_id("order_id", self.order_id, ORDER_ID_MAX_LEN)
        check_symbol(self.symbol)
        if self.side not in ORDER_SIDES:
            raise ValidationError(f"fill side must be B or S, got {self.side!r}")
        if self.qty <= 0:
            raise ValidationError(f"fill qty must be > 0, got {self.qty}")
        check_price("price", self.price)

    def encode(self) -> bytes:
        return pack(
            _header(self.TYPE, self.order_id, self.symbol, self.ts_ns)
            | {"account": self.account, "side": self.side, "qty": self.qty, "price": self.price}
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> OrderFilled:
        return cls(
            order_id=get_str(raw, "order_id", max_len=ORDER_ID_MAX_LEN),
            account=get_str(raw, "account", max_len=ACCOUNT_MAX_LEN),
            symbol=check_symbol(get(raw, "symbol")),
            side=get_choice(raw, "side", ORDER_SIDES),
            qty=get_int(raw, "qty", minimum=1),
            price=check_price("price", get(raw, "price")),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    """Terminal: an immediate-or-cancel limit order that was not marketable against the quote."""

    TYPE: ClassVar[OrderKind] = ORDER_CANCELLED_TYPE

    order_id: str
    account: str
    symbol: str
    text: str
    ts_ns: int

    def __post_init__(self) -> None:
        _check_id("order_id", self.order_id, ORDER_ID_MAX_LEN)
        check_symbol(self.symbol)

    def encode(self) -> bytes:
        return pack(
            _header(self.TYPE, self.order_id, self.symbol, self.ts_ns)
            | {"account": self.account, "text": self.text}
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> OrderCancelled:
        text = get(raw, "text")
        if not isinstance(text, str):
            raise DecodeError("field 'text' must be a string")
        return cls(
            order_id=get_str(raw, "order_id", max_len=ORDER_ID_MAX_LEN),
            account=get_str(raw, "account", max_len=ACCOUNT_MAX_LEN),
            symbol=check_symbol(get(raw, "symbol")),
            text=text,
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


OrderEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled
TerminalEvent = OrderRejected | OrderFilled | OrderCancelled
TERMINAL_EVENTS = (OrderRejected, OrderFilled, OrderCancelled)


def readable_order_id(raw: object) -> str | None:
    """The order id of a command that may be otherwise malformed, if one can be read.

    A bad command is answered with an OrderRejected when its sender can be told (it has an id
    to correlate on); only a command without one goes to the dead-letter topic.
    """
    if not isinstance(raw, Mapping):
        return None
    value = raw.get("order_id")
    if isinstance(value, str) and 0 < len(value) <= ORDER_ID_MAX_LEN:
        return value
    return None
