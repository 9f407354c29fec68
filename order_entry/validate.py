"""The decision on one order command: pure, so that a retry computes nothing new.

Reads a command's bytes and the cached quote of its symbol, and returns the events to emit:
an OrderRejected, or an OrderAccepted followed by an OrderFilled (marketable) or an
OrderCancelled (a limit order that is not marketable: orders are immediate-or-cancel).
A command so malformed that no order id can be read gets no event (there is no one to tell):
the caller dead-letters it.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

import msgpack

from common.errors import SchemaError
from common.schema import NewOrder, OrderEvent, Quote
from common.schema.codec import unpack
from common.schema.fields import check_symbol
from common.schema.orders import (
    NEW_ORDER_TYPE,
    REJECT_LIMIT_OUT_OF_BAND,
    REJECT_MALFORMED,
    REJECT_NO_QUOTE,
    REJECT_QTY_TOO_LARGE,
    REJECT_STALE_QUOTE,
    REJECT_UNKNOWN_SYMBOL,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    readable_order_id,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_qty: int
    limit_band: float  # fraction of the mid
    stale_after: float  # seconds


@dataclass(frozen=True, slots=True)
class Parsed:
    """A command read off the wire: the order, or why it is bad and the id to answer to."""

    order: NewOrder | None
    order_id: str | None
    symbol: str
    error: str


def parse(data: bytes | None) -> Parsed:
    if data is None:
        return Parsed(None, None, "", "empty record")
    try:
        kind, raw = unpack(data)
        if kind != NEW_ORDER_TYPE:
            return Parsed(None, readable_order_id(raw), _symbol(raw), f"not a command: {kind!r}")
        return Parsed(NewOrder.from_wire(raw), None, "", "")
    except SchemaError as exc:
        raw_map = _lenient(data)
        return Parsed(None, readable_order_id(raw_map), _symbol(raw_map), str(exc))


def _lenient(data: bytes) -> object:
    # The strict decode failed; look again only to find an id and a symbol to answer with.
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError, TypeError):
        return None


def _symbol(raw: object) -> str:
    if not isinstance(raw, dict):
        return ""
    try:
        return check_symbol(raw.get("symbol"))
    except SchemaError:
        return ""


def decide(
    order: NewOrder,
    *,
    tradable: Set[str],
    quote: Quote | None,
    limits: Limits,
    now_ns: int,
) -> list[OrderEvent]:
    def reject(reason: str, text: str) -> list[OrderEvent]:
        return [
            OrderRejected(
                order_id=order.order_id, symbol=order.symbol, reason=reason, text=text, ts_ns=now_ns
            )
        ]

    if order.symbol not in tradable:
        return reject(REJECT_UNKNOWN_SYMBOL, f"{order.symbol} is not tradable here")
    if order.qty > limits.max_qty:
        return reject(REJECT_QTY_TOO_LARGE, f"qty {order.qty} > max {limits.max_qty}")
    if quote is None:
        return reject(REJECT_NO_QUOTE, f"no quote for {order.symbol}")
    age = (now_ns - quote.ts_ns) / 1e9
    if age > limits.stale_after:
        return reject(REJECT_STALE_QUOTE, f"quote is {age:.1f}s old (> {limits.stale_after}s)")
    mid = quote.mid
    if order.limit is not None and abs(order.limit - mid) > limits.limit_band * mid:
        return reject(
            REJECT_LIMIT_OUT_OF_BAND,
            f"limit {order.limit} is more than {limits.limit_band:.0%} from mid {mid:.4f}",
        )
    accepted = OrderAccepted(
        order_id=order.order_id,
        account=order.account,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        ts_ns=now_ns,
    )
    price = quote.ask if order.side == "B" else quote.bid
    marketable = (
        order.limit is None
        or (order.side == "B" and order.limit >= price)
        or (order.side == "S" and order.limit <= price)
    )
    if not marketable:
        cancelled = OrderCancelled(
            order_id=order.order_id,
            account=order.account,
            symbol=order.symbol,
            text=f"IOC limit {order.limit} not marketable against {price}",
            ts_ns=now_ns,
        )
        return [accepted, cancelled]
    filled = OrderFilled(
        order_id=order.order_id,
        account=order.account,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        price=price,
        ts_ns=now_ns,
    )
    return [accepted, filled]


def malformed(parsed: Parsed, now_ns: int) -> OrderRejected:
    assert parsed.order_id is not None
    return OrderRejected(
        order_id=parsed.order_id,
        symbol=parsed.symbol,
        reason=REJECT_MALFORMED,
        text=parsed.error[:500],
        ts_ns=now_ns,
    )
