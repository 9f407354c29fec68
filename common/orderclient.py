"""The client side of the order contract: an order from what a user typed, and its events.

What ``marketfeed order`` and ``POST /v1/orders`` share: sides as users name them, a NewOrder
built (and validated by the schema) from loose input, an event as JSON, and whether a list of
events holds the order's outcome. The sending and the waiting are each caller's own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from common.schema import NewOrder
from common.schema.orders import TERMINAL_EVENTS, OrderEvent, TerminalEvent

# How users name the sides; the wire carries "B" / "S".
SIDES = {"buy": "B", "sell": "S"}


def new_order(
    *,
    side: str,
    symbol: str,
    qty: int,
    account: str,
    limit: float | None = None,
    order_id: str | None = None,
) -> NewOrder:
    """A NewOrder (a fresh order id unless one is given); SchemaError if a value is bad."""
    return NewOrder(
        order_id=order_id or uuid.uuid4().hex,
        account=account,
        symbol=symbol,
        side=SIDES.get(side, side),
        qty=qty,
        limit=limit,
        ts_ns=time.time_ns(),
    )


def event_dict(event: OrderEvent) -> dict[str, Any]:
    """One event as JSON: its wire ``type`` and fields."""
    return {"type": str(event.TYPE), **asdict(event)}


def terminal(events: Sequence[OrderEvent]) -> TerminalEvent | None:
    """The outcome among ``events`` (every order has at most one), or None yet."""
    for event in events:
        if isinstance(event, TERMINAL_EVENTS):
            return event
    return None
