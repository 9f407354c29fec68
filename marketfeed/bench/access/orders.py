"""Orders the synchronous way, with and without HTTP: POST /v1/orders beside the same wait
done in-process.

The baseline is the API's own order path (``http_api.orderdesk``: send the command, wait for
its terminal event on the order index) run in this process, so the ratio is what HTTP and a
separate API process add to synchronous-over-asynchronous. One order at a time, market buys
over the tradable symbols; timed from the send to the outcome.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence

import httpx

from common.metrics import LatencyHistogram
from common.orderclient import new_order
from http_api.orderdesk import OrderDesk, Placed, view
from marketfeed.bench.access.results import HTTP, KAFKA, OrderResult

TIMEOUT_S = 10.0


async def direct(desk: OrderDesk, symbols: Sequence[str], count: int) -> OrderResult:
    histogram, outcomes = LatencyHistogram(resolution_us=10), Counter[str]()
    samples = []
    for i in range(count):
        order = new_order(side="buy", symbol=symbols[i % len(symbols)], qty=1, account="bench")
        start = time.perf_counter()
        placed = await desk.place(order, timeout=TIMEOUT_S)
        samples.append(time.perf_counter() - start)
        outcomes[
            view(placed.order_id, placed.events)["status"]
            if placed.state is Placed.DONE
            else str(placed.state)
        ] += 1
    histogram.record_seconds(samples)
    return OrderResult(KAFKA, count, histogram.percentiles().as_dict(), dict(outcomes))


async def over_http(client: httpx.AsyncClient, symbols: Sequence[str], count: int) -> OrderResult:
    histogram, outcomes = LatencyHistogram(resolution_us=10), Counter[str]()
    samples = []
    for i in range(count):
        body = {"side": "buy", "symbol": symbols[i % len(symbols)], "qty": 1, "account": "bench"}
        start = time.perf_counter()
        r = await client.post(
            "/v1/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        samples.append(time.perf_counter() - start)
        outcomes[r.json().get("status") or r.json().get("error", str(r.status_code))] += 1
    histogram.record_seconds(samples)
    return OrderResult(HTTP, count, histogram.percentiles().as_dict(), dict(outcomes))
