"""``GET /v1/quotes`` and ``GET /v1/symbols``: a service's cached quotes, as ``marketfeed quote``.

The rows come from ``common.cache.lookup``, the code behind ``marketfeed quote``: cached
quotes with their age and staleness, symbols outside the service's interest said so, and one
of interest a cold cache lacks fetched from the publisher's snapshot (when the broker is
there; else ``missing``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query

from common.cache.lookup import lookup
from http_api.routes.deps import BackendDep, symbol_list

router = APIRouter(prefix="/v1", tags=["quotes"])

Service = Annotated[str, Query(description="whose cache: order_entry or portfolio")]


@router.get("/quotes", summary="cached quotes of a service, with age and staleness")
async def quotes(
    backend: BackendDep,
    symbols: Annotated[str, Query(description="comma-separated, e.g. AAAA,AAAB")],
    service: Service = "order_entry",
) -> dict[str, Any]:
    reader = backend.reader(service)
    names = symbol_list(symbols, most=backend.config.max_symbols)
    fetch = None
    if backend.kafka.ready.is_set():
        fetch = partial(backend.kafka.snapshot, timeout=backend.config.snapshot_timeout)
    rows = await lookup(reader, names, fetch)
    return {"service": service, "quotes": [r.as_dict() for r in rows]}


@router.get("/symbols", summary="the symbols a service's cache follows now")
async def symbols(backend: BackendDep, service: Service = "order_entry") -> dict[str, Any]:
    interest = await backend.reader(service).interest()
    return {"service": service, "symbols": sorted(interest)}
