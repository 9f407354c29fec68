"""``GET /v1/positions``: portfolio's positions marked to its cached quotes, as the CLI shows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from http_api.config import PORTFOLIO
from http_api.routes.deps import BackendDep, name_list
from portfolio.marked import marked_positions

router = APIRouter(prefix="/v1", tags=["positions"])


@router.get("/positions", summary="positions per account: qty, average price, mark, P&L")
async def positions(
    backend: BackendDep,
    account: Annotated[
        str | None, Query(description="only these accounts, comma-separated")
    ] = None,
) -> dict[str, Any]:
    reader = backend.reader(PORTFOLIO)
    rows = await marked_positions(
        reader, prefix=backend.prefix(PORTFOLIO), accounts=name_list(account)
    )
    unrealised = [r.unrealised for r in rows if r.unrealised is not None]
    return {
        "positions": [r.as_dict() for r in rows],
        "totals": {
            "realised": sum(r.position.realised for r in rows),
            "unrealised": sum(unrealised),
            "unmarked": len(rows) - len(unrealised),
        },
    }
