"""Market-data messages: Quote (top of book) and Trade, as published by feed_publisher.

Every market-data message carries its symbol, the publisher ``epoch`` (fixed for the life of a
publisher process, larger for a later one), a per-symbol ``seq`` that only goes up within an
epoch (one sequence per topic and symbol, so a quote consumer can tell a gap from a trade), and
``ts_ns``, the publish time in nanoseconds since the Unix epoch. ``(epoch, seq)`` orders the
messages of a symbol across publisher restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from common.errors import ValidationError
from common.schema.codec import SCHEMA_VERSION, pack
from common.schema.fields import check_price, check_symbol, get, get_choice, get_int, get_price

QUOTE_TYPE = "quote"
TRADE_TYPE = "trade"
SIDES = frozenset({"B", "S"})


def quote_wire(
    symbol: str,
    epoch: int,
    seq: int,
    ts_ns: int,
    bid: float,
    ask: float,
    bid_size: int,
    ask_size: int,
) -> dict[str, Any]:
    """The wire map of a quote. The publisher's hot path calls this without building a Quote."""
    return {
        "v": SCHEMA_VERSION,
        "type": QUOTE_TYPE,
        "symbol": symbol,
        "epoch": epoch,
        "seq": seq,
        "ts_ns": ts_ns,
        "bid": bid,
        "ask": ask,
        "bid_size": bid_size,
        "ask_size": ask_size,
    }


def trade_wire(
    symbol: str, epoch: int, seq: int, ts_ns: int, price: float, size: int, side: str
) -> dict[str, Any]:
    """The wire map of a trade; ``side`` is the aggressor, ``B`` (buyer) or ``S`` (seller)."""
    return {
        "v": SCHEMA_VERSION,
        "type": TRADE_TYPE,
        "symbol": symbol,
        "epoch": epoch,
        "seq": seq,
        "ts_ns": ts_ns,
        "price": price,
        "size": size,
        "side": side,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """Best bid and offer of one symbol at one instant."""

    TYPE: ClassVar[str] = QUOTE_TYPE

    symbol: str
    epoch: int
    seq: int
    ts_ns: int
    bid: float
    ask: float
    bid_size: int
    ask_size: int

    def __post_init__(self) -> None:
        _validate_quote(self)

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    def to_wire(self) -> dict[str, Any]:
        return quote_wire(
            self.symbol,
            self.epoch,
            self.seq,
            self.ts_ns,
            self.bid,
            self.ask,
            self.bid_size,
            self.ask_size,
        )

    def encode(self) -> bytes:
        return pack(self.to_wire())

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Quote:
        return cls(
            symbol=check_symbol(get(raw, "symbol")),
            epoch=get_int(raw, "epoch"),
            seq=get_int(raw, "seq"),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
            bid=get_price(raw, "bid"),
            ask=get_price(raw, "ask"),
            bid_size=get_int(raw, "bid_size"),
            ask_size=get_int(raw, "ask_size"),
        )


def _validate_quote(q: Quote) -> None:
    # Re-checked here so that a Quote built in code is as trustworthy as a decoded one.
    check_symbol(q.symbol)
    for name in ("epoch", "seq", "bid_size", "ask_size"):
        if getattr(q, name) < 0:
            raise ValidationError(f"field {name!r} must be >= 0")
    if q.ts_ns <= 0:
        raise ValidationError("field 'ts_ns' must be positive")
    check_price("bid", q.bid)
    check_price("ask", q.ask)
    if q.bid > q.ask:
        raise ValidationError(f"crossed quote for {q.symbol}: bid {q.bid} > ask {q.ask}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One execution printed by the market."""

    TYPE: ClassVar[str] = TRADE_TYPE

    symbol: str
    epoch: int
    seq: int
    ts_ns: int
    price: float
    size: int
    side: str

    def __post_init__(self) -> None:
        check_symbol(self.symbol)
        if self.epoch < 0 or self.seq < 0:
            raise ValidationError("fields 'epoch' and 'seq' must be >= 0")
        if self.ts_ns <= 0:
            raise ValidationError("field 'ts_ns' must be positive")
        check_price("price", self.price)
        if self.size <= 0:
            raise ValidationError(f"trade size must be positive, got {self.size}")
        if self.side not in SIDES:
            raise ValidationError(f"trade side must be B or S, got {self.side!r}")

    def to_wire(self) -> dict[str, Any]:
        return trade_wire(
            self.symbol, self.epoch, self.seq, self.ts_ns, self.price, self.size, self.side
        )

    def encode(self) -> bytes:
        return pack(self.to_wire())

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Trade:
        return cls(
            symbol=check_symbol(get(raw, "symbol")),
            epoch=get_int(raw, "epoch"),
            seq=get_int(raw, "seq"),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
            price=get_price(raw, "price"),
            size=get_int(raw, "size", minimum=1),
            side=get_choice(raw, "side", SIDES),
        )
