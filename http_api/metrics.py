"""The API's Prometheus metrics, served on its own app at ``/metrics``.

Read at scrape time: the quote streams' counters (``QuoteHub.stats()``: clients, polls, values
offered, conflated, events sent), the broker link, and the answers given by route and status
(counted by a small ASGI middleware: the route's template, never the URL, so the label values
stay bounded).
"""

from __future__ import annotations

from collections import Counter

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.collectors import Families, ServiceCollector
from common.exposition import new_registry
from http_api.backend import Backend

SERVICE = "api"


class ApiMetrics:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.answers: Counter[tuple[str, str]] = Counter()  # (route, status) -> answered

    def add_to(self, f: Families) -> None:
        hub = self.backend.hub.stats()
        f.gauge("api_stream_clients", "quote stream (SSE) clients connected", hub.clients)
        f.counter("api_stream_polls", "polls of the caches for the streams", hub.polls)
        f.counter("api_stream_updates", "quote values offered to stream clients", hub.updates)
        f.counter(
            "api_stream_conflated",
            "feed updates a stream client never saw (conflated by cache, poll or its slot)",
            hub.conflated,
        )
        f.counter("api_stream_events", "quote events sent to stream clients", hub.sent)
        link = self.backend.kafka
        connected = float(link.ready.is_set())
        f.gauge("api_broker_connected", "1 while the API's broker link is up", connected)
        f.retries("link", {"kafka": link.retry})
        for (route, status), count in sorted(self.answers.items()):
            f.counter(
                "api_responses", "HTTP answers by route template and status", count,
                route=route, status=status,
            )  # fmt: skip


class _CountAnswers:
    """ASGI middleware: one count per answer, by the matched route's template and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                self.metrics.answers[(path, str(message["status"]))] += 1
            await send(message)

        await self.app(scope, receive, counted)


def install(app: FastAPI, backend: Backend) -> None:
    """``GET /metrics`` on ``app``, and the middleware that counts its answers."""
    metrics = ApiMetrics(backend)
    registry = new_registry()
    registry.register(ServiceCollector(SERVICE, metrics))
    app.add_middleware(_CountAnswers, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
