"""Placing an order over HTTP: synchronous for the client, asynchronous underneath.

``place`` registers a waiter on the order index, sends the command on ``orders.commands``
(keyed by symbol, as every client does), waits for the broker's acknowledgement and then for
the order's terminal event, up to a deadline. Outcomes: the terminal event came (``DONE``);
the command was acknowledged but no outcome came in time (``PENDING``: 202, the order's URL
will have it); the broker did not acknowledge in time (``UNACKNOWLEDGED``: 504, it may or may
not have been sent; retry with the same idempotency key).

Idempotency: with a key, the order id is derived from the account and the key (a hash), so
the same key always names the same order. A retry whose order already has its outcome gets
that outcome and nothing is sent; one whose order is still open sends the same command again,
which order_entry's order ledger recognises as a duplicate (same order id) and does not
execute twice. So the guarantee rests on order_entry's ledger (``--order-memory``, 7 days) and
the event log, not on anything the API keeps: a restarted API, or another API process, gives
the same answer. The key is scoped by account; reusing it for a different order is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError
from common.lifecycle import cancel_all
from common.orderclient import event_dict, terminal
from common.schema import NewOrder, OrderCancelled, OrderFilled, OrderRejected
from common.schema.orders import OrderEvent
from common.topics import symbol_key
from http_api.errors import ApiError, Reason
from http_api.kafkalink import KafkaLink

IDEMPOTENT_PREFIX = "idem-"
MAX_KEY_LEN = 255


class Placed(StrEnum):
    DONE = "done"
    PENDING = "pending"
    UNACKNOWLEDGED = "unacknowledged"


@dataclass(frozen=True, slots=True)
class Placement:
    state: Placed
    order_id: str
    events: list[OrderEvent]
    replayed: bool = False  # an idempotent retry answered from the first outcome
    elapsed_ms: float = 0.0


def keyed_order_id(account: str, key: str) -> str:
    """The order id of ``key`` for ``account``: always the same, 45 characters."""
    digest = hashlib.sha256(f"{account}\n{key}".encode()).hexdigest()
    return IDEMPOTENT_PREFIX + digest[:40]


def same_order(order: NewOrder, events: Sequence[OrderEvent]) -> bool:
    """Whether ``events`` can be those of ``order`` (a key reused for another order cannot)."""
    for event in events:
        if event.symbol and event.symbol != order.symbol:
            return False
        for name in ("account", "side", "qty"):
            value = getattr(event, name, None)
            if value is not None and value != getattr(order, name):
                return False
    return True


class OrderDesk:
    def __init__(self, link: KafkaLink, *, timeout: float) -> None:
        self.link = link
        self.timeout = timeout
        self._inflight: dict[str, asyncio.Task[Placement]] = {}

    async def place(
        self, order: NewOrder, *, keyed: bool = False, timeout: float | None = None
    ) -> Placement:
        """Send ``order`` and wait for its outcome (see the module).

        ``keyed``: its order id comes from an idempotency key, so it may have been placed
        before: a known outcome is answered again and nothing is sent. One send per order id
        at a time: a retry that arrives while the first is waiting waits with it.
        """
        if keyed:
            known = self.known(order.order_id)
            if known is not None and not same_order(order, known):
                raise ApiError(
                    422,
                    Reason.IDEMPOTENCY_KEY_REUSED,
                    "this Idempotency-Key was used for another order",
                )
            if known is not None and terminal(known) is not None:
                return Placement(Placed.DONE, order.order_id, known, replayed=True)
        running = self._inflight.get(order.order_id)
        if running is not None:
            return replace(await asyncio.shield(running), replayed=True)
        task = asyncio.create_task(self._place(order, timeout or self.timeout))
        self._inflight[order.order_id] = task
        task.add_done_callback(lambda _: self._inflight.pop(order.order_id, None))
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel the placements still waiting (their clients are gone or the API stops)."""
        await cancel_all(self._inflight.values())

    def known(self, order_id: str) -> list[OrderEvent] | None:
        return self.link.orders.events(order_id)

    async def _place(self, order: NewOrder, timeout: float) -> Placement:
        started = time.monotonic()
        producer = self.link.producer  # BrokerUnavailableError if not connected
        index = self.link.orders
        waiter = index.waiter(order.order_id)
        try:
            async with asyncio.timeout(timeout):
                try:
                    await producer.send_and_wait(
                        self.link.settings.topics.orders_commands,
                        order.encode(),
                        key=symbol_key(order.symbol),
                    )
                except KafkaError as exc:
                    raise BrokerUnavailableError(f"the order was not sent: {exc}") from None
        except TimeoutError:
            index.forget(order.order_id, waiter)
            return Placement(Placed.UNACKNOWLEDGED, order.order_id, [], elapsed_ms=_ms(started))
        except BaseException:
            index.forget(order.order_id, waiter)
            raise
        try:
            async with asyncio.timeout(max(0.0, timeout - (time.monotonic() - started))):
                events = await waiter
        except TimeoutError:
            events = index.events(order.order_id) or []
            return Placement(Placed.PENDING, order.order_id, events, elapsed_ms=_ms(started))
        finally:
            index.forget(order.order_id, waiter)
        return Placement(Placed.DONE, order.order_id, events, elapsed_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def view(order_id: str, events: Sequence[OrderEvent]) -> dict[str, Any]:
    """An order as the API shows it: its status, outcome fields and events."""
    outcome = terminal(events)
    out: dict[str, Any] = {"order_id": order_id, "url": f"/v1/orders/{order_id}"}
    if isinstance(outcome, OrderFilled):
        out |= {"status": "filled", "price": outcome.price}
    elif isinstance(outcome, OrderCancelled):
        out |= {"status": "cancelled", "text": outcome.text}
    elif isinstance(outcome, OrderRejected):
        out |= {"status": "rejected", "reason": outcome.reason, "text": outcome.text}
    else:
        out["status"] = "pending"
    for event in events:
        for name in ("symbol", "account", "side", "qty"):
            value = getattr(event, name, None)
            if value and name not in out:
                out[name] = value
    out["events"] = [event_dict(e) for e in events]
    return out
