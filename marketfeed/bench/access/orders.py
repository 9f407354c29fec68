"""Orders the synchronous way, with and without HTTP: POST /v1/orders beside the same wait
done in-process.

The baseline is the API's own order path (``http_api.orderdesk``: send the command, wait for
its terminal event on the order index) run in this process, so the ratio is what HTTP and a
separate API process add to synchronous-over-asynchronous. One order at a time, market buys
over the tradable symbols, the two paths taking turns; timed from the send to the outcome
(an order with no outcome within ``TIMEOUT_S`` is counted apart).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence

import httpx

from common.orderclient import new_order
from http_api.orderdesk import OrderDesk, Placed, view
from marketfeed.bench.access.results import HTTP, KAFKA, OrderResult
from marketfeed.bench.access.timer import Timer

TIMEOUT_S = 10.0
ACCOUNT = "bench"


async def measure(
    desk: OrderDesk, client: httpx.AsyncClient, symbols: Sequence[str], count: int
) -> list[OrderResult]:
    timers = {KAFKA: Timer(resolution_us=10), HTTP: Timer(resolution_us=10)}
    outcomes: dict[str, Counter[str]] = {KAFKA: Counter(), HTTP: Counter()}

    async def direct(symbol: str) -> bool:
        order = new_order(side="buy", symbol=symbol, qty=1, account=ACCOUNT)
        placed = await desk.place(order, timeout=TIMEOUT_S)
        done = placed.state is Placed.DONE
        outcomes[KAFKA][
            view(placed.order_id, placed.events)["status"] if done else placed.state
        ] += 1
        return done

    async def over_http(symbol: str) -> bool:
        body = {"side": "buy", "symbol": symbol, "qty": 1, "account": ACCOUNT}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        r = await client.post("/v1/orders", json=body, headers=headers, params={"wait": TIMEOUT_S})
        answer = r.json()
        outcomes[HTTP][answer.get("status") or answer.get("error", str(r.status_code))] += 1
        return r.status_code == 200

    for i in range(count):
        symbol = symbols[i % len(symbols)]
        await timers[KAFKA].time(direct(symbol))
        await timers[HTTP].time(over_http(symbol))
    return [
        OrderResult(path, count, timers[path].percentiles(), dict(outcomes[path]))
        for path in (KAFKA, HTTP)
    ]
