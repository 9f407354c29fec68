"""Every error the API answers: JSON ``{"error": reason, "detail": text}`` and a status.

Routes raise :class:`ApiError` (or let one of our own errors through: a Redis away is
``CacheUnavailableError``, a broker away ``BrokerUnavailableError``); the handlers installed by
:func:`install` turn each into its status. A body that does not validate is 422 with the
fields at fault; anything unforeseen is a 500 with no traceback (logged here). No answer
carries a credential: URLs in a detail lose their user, password and query.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import (
    BrokerUnavailableError,
    CacheUnavailableError,
    ConfigError,
    MarketfeedError,
    SchemaError,
)
from common.logs import redact_text

log = logging.getLogger("http_api")


class Reason(StrEnum):
    """The ``error`` of an answer: stable strings a client can switch on."""

    BAD_SYMBOL = "bad_symbol"
    BAD_PARAMETER = "bad_parameter"
    UNKNOWN_SERVICE = "unknown_service"
    INVALID_BODY = "invalid_body"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    UNKNOWN_ORDER = "unknown_order"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CACHE_UNAVAILABLE = "cache_unavailable"
    BROKER_UNAVAILABLE = "broker_unavailable"
    SERVICE_NOT_CONFIGURED = "service_not_configured"
    STARTING = "starting"
    TOO_MANY_CLIENTS = "too_many_clients"
    ORDER_TIMEOUT = "order_timeout"
    UNAUTHORIZED = "unauthorized"
    INTERNAL = "internal_error"


class ApiError(Exception):
    def __init__(self, status: int, reason: Reason, detail: Any) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


def scrub(text: str) -> str:
    """``text`` with every URL in it redacted (``redis://:pw@host`` -> ``redis://:***@host``)."""
    return redact_text(text)


def body(reason: Reason, detail: Any) -> dict[str, Any]:
    return {"error": reason.value, "detail": scrub(detail) if isinstance(detail, str) else detail}


def answer(status: int, reason: Reason, detail: Any, **headers: str) -> JSONResponse:
    return JSONResponse(body(reason, detail), status_code=status, headers=headers or None)


def of_marketfeed(exc: MarketfeedError) -> ApiError:
    """Our own error as the answer it deserves."""
    if isinstance(exc, CacheUnavailableError):
        return ApiError(503, Reason.CACHE_UNAVAILABLE, str(exc))
    if isinstance(exc, BrokerUnavailableError):
        return ApiError(503, Reason.BROKER_UNAVAILABLE, str(exc))
    if isinstance(exc, SchemaError):
        return ApiError(422, Reason.INVALID_BODY, str(exc))
    if isinstance(exc, ConfigError):
        return ApiError(400, Reason.BAD_PARAMETER, str(exc))
    return ApiError(503 if exc.retriable else 500, Reason.INTERNAL, str(exc))


_HTTP_REASONS = {404: Reason.NOT_FOUND, 405: Reason.METHOD_NOT_ALLOWED}


def install(app: FastAPI) -> None:
    """Answer every error as JSON with its reason."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return answer(exc.status, exc.reason, exc.detail)

    async def marketfeed_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MarketfeedError)
        err = of_marketfeed(exc)
        return answer(err.status, err.reason, err.detail)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        # A bad body is 422; a bad or missing query parameter or header is a bad request.
        in_body = all(e.get("loc", ("body",))[0] == "body" for e in exc.errors())
        if in_body:
            return answer(422, Reason.INVALID_BODY, fields)
        return answer(400, Reason.BAD_PARAMETER, fields)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = _HTTP_REASONS.get(exc.status_code, Reason.BAD_PARAMETER)
        return answer(exc.status_code, reason, str(exc.detail))

    async def unforeseen(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return answer(500, Reason.INTERNAL, "the API failed to answer; see its log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(MarketfeedError, marketfeed_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unforeseen)
