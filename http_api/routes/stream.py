"""``GET /v1/stream/quotes``: Server-Sent Events of a service's quotes, conflated per client.

Only the requested symbols; at most ``max_rate`` events a second for this client (capped by
the server's ``--stream-max-rate``), each carrying every symbol that changed since the last
one, newest value only (``http_api.stream``). The first event holds the current values. If the
cache cannot be read, an ``unavailable`` event says so (not ``error``: a browser's EventSource
has an ``error`` event of its own) and the stream waits for it (``recovered``).
A comment every ``KEEPALIVE_S`` keeps idle connections open through proxies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from common.cache.lookup import lookup
from http_api.errors import Reason, body
from http_api.routes.deps import BackendDep, symbol_list
from http_api.stream import StreamClient

router = APIRouter(prefix="/v1", tags=["stream"])

KEEPALIVE_S = 15.0
DEFAULT_RATE = 5.0


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get(
    "/stream/quotes",
    summary="Server-Sent Events: the requested symbols' quotes, conflated to max_rate per client",
    response_class=StreamingResponse,
)
async def stream_quotes(
    backend: BackendDep,
    symbols: Annotated[str, Query(description="comma-separated, e.g. AAAA,AAAB")],
    service: Annotated[str, Query(description="whose cache")] = "order_entry",
    max_rate: Annotated[
        float, Query(gt=0, description="most events a second (capped by the server)")
    ] = DEFAULT_RATE,
) -> StreamingResponse:
    reader = backend.reader(service)
    names = symbol_list(symbols, most=backend.config.max_symbols)
    first = await lookup(reader, names)  # errors before the stream starts are plain answers
    hub = backend.hub
    stale_after = backend.config.stale_after

    async def events() -> AsyncIterator[str]:
        async with hub.subscribe(service, names, max_rate) as client:
            yield "retry: 2000\n\n"
            yield _event("quotes", {"service": service, "quotes": [r.as_dict() for r in first]})
            async for chunk in _updates(client, service, stale_after):
                yield chunk

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _updates(client: StreamClient, service: str, stale_after: float) -> AsyncIterator[str]:
    interval = 1.0 / client.max_rate
    error: str | None = None
    while not client.closed:
        try:
            async with asyncio.timeout(KEEPALIVE_S):
                await client.changed.wait()
        except TimeoutError:
            yield ": keepalive\n\n"
            continue
        if client.closed:
            return
        if client.error != error:
            error = client.error
            if error is not None:
                yield _event("unavailable", body(Reason.CACHE_UNAVAILABLE, error))
            else:
                yield _event("recovered", {"service": service})
        rows = client.take(stale_after)
        if rows:
            client.sent += 1
            payload = {
                "service": service,
                "quotes": [r.as_dict() for r in rows],
                "conflated": client.conflated,
            }
            yield _event("quotes", payload)
        # The client's rate: whatever changes meanwhile waits in its slot, newest only.
        await asyncio.sleep(interval)
