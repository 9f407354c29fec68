"""Order commands and events: each round-trips through the wire format; bad values are refused."""

from __future__ import annotations

import msgpack
import pytest

from common.errors import SchemaError
from common.schema import (
    Message,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    decode,
)
from common.schema.orders import REJECT_STALE_QUOTE, readable_order_id

TS = 1_700_000_000_000_000_000

EXAMPLES: list[Message] = [
    NewOrder(order_id="o-1", account="acc", symbol="AAAA", side="B", qty=10, limit=None, ts_ns=TS),
    NewOrder(order_id="o-2", account="acc", symbol="BRK.B", side="S", qty=1, limit=99.5, ts_ns=TS),
    OrderAccepted(order_id="o-1", account="acc", symbol="AAAA", side="B", qty=10, ts_ns=TS),
    OrderRejected(order_id="o-1", symbol="AAAA", reason=REJECT_STALE_QUOTE, text="old", ts_ns=TS),
    OrderRejected(order_id="o-1", symbol="", reason="MALFORMED", text="no symbol", ts_ns=TS),
    OrderFilled(order_id="o-1", account="a", symbol="AAAA", side="S", qty=3, price=1.5, ts_ns=TS),
    OrderCancelled(order_id="o-1", account="a", symbol="AAAA", text="not marketable", ts_ns=TS),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    assert decode(message.encode()) == message


def wire(**changes: object) -> bytes:
    raw: dict[str, object] = {
        "v": 1,
        "type": "order.new",
        "order_id": "o-1",
        "account": "acc",
        "symbol": "AAAA",
        "side": "B",
        "qty": 10,
        "limit": 12.5,
        "ts_ns": TS,
    }
    raw.update(changes)
    return msgpack.packb({k: v for k, v in raw.items() if v is not ...})


def test_integer_limit_is_accepted() -> None:
    order = decode(wire(limit=12))
    assert isinstance(order, NewOrder)
    assert order.limit == 12.0


@pytest.mark.parametrize(
    "changes",
    [
        {"qty": 0},
        {"qty": -5},
        {"qty": 1.5},
        {"qty": True},
        {"side": "X"},
        {"limit": -1.0},
        {"limit": float("nan")},
        {"limit": "12"},
        {"symbol": "aaaa"},
        {"order_id": ""},
        {"order_id": ...},
        {"account": 7},
        {"ts_ns": 0},
    ],
)
def test_bad_new_order_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(SchemaError):
        decode(wire(**changes))


def test_unknown_reject_reason_is_refused() -> None:
    with pytest.raises(SchemaError):
        OrderRejected(order_id="o", symbol="AAAA", reason="NOPE", text="", ts_ns=TS)


def test_readable_order_id() -> None:
    assert readable_order_id({"order_id": "o-9", "qty": -1}) == "o-9"
    assert readable_order_id({"order_id": 5}) is None
    assert readable_order_id([1, 2]) is None


def test_market_order_may_leave_out_the_limit() -> None:
    order = decode(wire(limit=...))
    assert isinstance(order, NewOrder)
    assert order.limit is None
