"""What every route takes: the running Backend, and symbol lists from a query parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.errors import SchemaError
from common.schema import check_symbol
from http_api.backend import Backend
from http_api.errors import ApiError, Reason


def backend(request: Request) -> Backend:
    found: Backend = request.app.state.backend
    return found


BackendDep = Annotated[Backend, Depends(backend)]


def symbol_list(text: str, *, most: int, name: str = "symbols") -> list[str]:
    """``"AAAA, AAAB"`` -> ``["AAAA", "AAAB"]``: 400 for none, too many, or a bad symbol."""
    symbols = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not symbols:
        raise ApiError(400, Reason.BAD_PARAMETER, f"{name}: name at least one symbol")
    if len(symbols) > most:
        raise ApiError(400, Reason.BAD_PARAMETER, f"{name}: at most {most} symbols")
    for symbol in symbols:
        try:
            check_symbol(symbol)
        except SchemaError as exc:
            raise ApiError(400, Reason.BAD_SYMBOL, f"{name}: {exc}") from None
    return symbols


def name_list(text: str | None) -> list[str]:
    return [] if not text else [p.strip() for p in text.split(",") if p.strip()]
