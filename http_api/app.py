"""The ASGI app: the routes of every resource, the error answers, the dashboard at ``/``.

``create_app(backend)`` builds it around a started or starting Backend; the server
(``http_api.server``) runs it. The OpenAPI description is at ``/openapi.json``, its pages at
``/docs``.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from http_api import errors, metrics
from http_api.auth import TokenGate
from http_api.backend import Backend
from http_api.routes import lag, orders, positions, quotes, stream

STATIC = files("http_api") / "static"

DESCRIPTION = """
The HTTP edge of marketfeed: read the services' quote caches as they do, place orders
synchronously (over Kafka underneath), stream quotes (Server-Sent Events, conflated per
client). Errors are JSON `{"error": reason, "detail": ...}`.
"""


def create_app(backend: Backend, *, token: str | None = None) -> FastAPI:
    """With ``token``, every request but the open few must carry it (``http_api.auth``)."""
    app = FastAPI(title="marketfeed API", version="1", description=DESCRIPTION)
    app.state.backend = backend
    if token is not None:
        # Added before the metrics middleware, so that it runs inside it: refusals are counted.
        app.add_middleware(TokenGate, token=token)
    errors.install(app)
    metrics.install(app, backend)
    for module in (quotes, orders, positions, lag, stream):
        app.include_router(module.router)

    @app.get("/v1/health", tags=["health"], summary="what the API can reach now")
    async def health() -> dict[str, Any]:
        return {
            "broker": "connected" if backend.kafka.ready.is_set() else "unavailable",
            "services": sorted(backend.readers),
            "stream": asdict(backend.hub.stats()),
        }

    static = str(STATIC)
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(f"{static}/index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_alias() -> RedirectResponse:
        return RedirectResponse("/")

    return app
