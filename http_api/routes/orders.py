"""``POST /v1/orders``, ``GET /v1/orders/{id}``, ``GET /v1/orders``: orders over HTTP.

POST is synchronous over asynchronous (``http_api.orderdesk``): 200 with the outcome (filled,
cancelled, or rejected with its reason: a rejection is an answer, not an HTTP error), 202 with
the order's URL (``Location``) when no outcome came within the wait, 504 when the broker did
not acknowledge the command in time. An ``Idempotency-Key`` makes a retry answer the first
outcome (``Idempotent-Replayed: true``), never place a second order. GET reads the order
index (the event log ``orders.events``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from common.orderclient import new_order
from common.schema.orders import ORDER_ID_MAX_LEN
from http_api.errors import ApiError, Reason, answer
from http_api.orderdesk import MAX_KEY_LEN, Placed, keyed_order_id, view
from http_api.routes.deps import BackendDep, name_list

router = APIRouter(prefix="/v1", tags=["orders"])


class OrderRequest(BaseModel):
    """An order: market, or immediate-or-cancel at ``limit``."""

    model_config = {"extra": "forbid"}

    side: Literal["buy", "sell"]
    symbol: str = Field(min_length=1, max_length=16, examples=["AAAA"])
    qty: int = Field(gt=0, examples=[100])
    limit: float | None = Field(default=None, gt=0, description="limit price; none: market")
    account: str = Field(default="api", min_length=1, max_length=64)


@router.post(
    "/orders",
    summary="place an order and wait for its outcome",
    responses={
        200: {"description": "the outcome: filled, cancelled, or rejected with its reason"},
        202: {"description": "sent, no outcome yet: follow Location"},
        422: {"description": "the body is not a valid order"},
        503: {"description": "the broker is away: nothing was sent"},
        504: {"description": "the broker did not acknowledge in time: retry with the same key"},
    },
)
async def place(
    backend: BackendDep,
    order: OrderRequest,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=MAX_KEY_LEN,
            description="makes a retry answer the first outcome, never a second order",
        ),
    ] = None,
    wait: Annotated[
        float | None, Query(gt=0, description="seconds to wait for the outcome (capped)")
    ] = None,
) -> Response:
    order_id = None if idempotency_key is None else keyed_order_id(order.account, idempotency_key)
    command = new_order(
        side=order.side,
        symbol=order.symbol,
        qty=order.qty,
        account=order.account,
        limit=order.limit,
        order_id=order_id,
    )
    timeout = min(wait or backend.config.order_timeout, backend.config.order_timeout)
    placed = await backend.desk.place(command, keyed=idempotency_key is not None, timeout=timeout)
    url = f"/v1/orders/{placed.order_id}"
    headers = {"Location": url}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    if placed.state is Placed.UNACKNOWLEDGED:
        return answer(
            504,
            Reason.ORDER_TIMEOUT,
            f"the broker did not acknowledge order {placed.order_id} within {timeout:g}s; it "
            "may or may not have been sent: retry with the same Idempotency-Key",
            **headers,
        )
    body = view(placed.order_id, placed.events) | {"elapsed_ms": placed.elapsed_ms}
    status = 200 if placed.state is Placed.DONE else 202
    return JSONResponse(body, status_code=status, headers=headers)


@router.get("/orders/{order_id}", summary="an order's events, from the event log")
async def order(
    backend: BackendDep,
    order_id: Annotated[str, Path(min_length=1, max_length=ORDER_ID_MAX_LEN)],
) -> dict[str, Any]:
    backend.kafka.require()
    events = backend.kafka.orders.events(order_id)
    if events is None:
        if not backend.kafka.orders.caught_up.is_set():
            raise ApiError(503, Reason.STARTING, "still reading the event log; try again")
        raise ApiError(404, Reason.UNKNOWN_ORDER, f"no order {order_id!r} in the event log")
    return view(order_id, events)


@router.get("/orders", summary="the most recent orders with their outcomes, newest first")
async def recent(
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    account: Annotated[str | None, Query(description="only these accounts")] = None,
) -> dict[str, Any]:
    backend.kafka.require()
    found = backend.kafka.orders.recent(limit, name_list(account))
    return {"orders": [view(order_id, events) for order_id, events in found]}
