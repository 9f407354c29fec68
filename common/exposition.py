"""A process's Prometheus ``/metrics`` endpoint: the setting, the HTTP server, the line it prints.

Every long-lived process (publisher, order_entry, portfolio, the order flow) serves the
collectors of its own ``CollectorRegistry`` on ``--metrics-host`` (loopback by default) and
``--metrics-port`` (``0``: a free port, ``off``: none). Once it listens it prints one line,
``marketfeed metrics: http://HOST:PORT/metrics (SERVICE)``, on stdout whatever the log level,
so that a launcher (``marketfeed up``) can read the port (``find_metrics_url``).

The server is a few lines of asyncio on the process's own event loop, not prometheus_client's
server thread: collectors read the counters the code keeps (plain ints, ``Counter``s) on the
loop that changes them, never half-way through a change, and a scrape costs the loop only the
time to format the text. The API serves its metrics on its own app instead (``http_api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest

from common.config import setting
from common.errors import ConfigError
from common.lifecycle import Lifecycle, cancel_all

log = logging.getLogger(__name__)

OFF = "off"
# A scraper that sends no complete request within this long is dropped.
_REQUEST_TIMEOUT_S = 5.0
_MAX_HEAD_BYTES = 16 * 1024
_LINE = re.compile(r"^marketfeed metrics: (http://\S+/metrics) \((\S+)\)$", re.MULTILINE)


def metrics_port(value: Any) -> str | None:
    text = str(value).strip().lower()
    if text == OFF or (text.isdigit() and 0 <= int(text) < 65536):
        return None
    return "must be a port 1..65535, 0 (a free port) or off"


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """The settings of a process's ``/metrics`` endpoint, mixed into its config dataclass."""

    # No instance layout of its own: mixed in beside slotted settings classes.
    __slots__ = ()

    metrics_port: str = setting(
        OFF,
        help="port of this process's Prometheus /metrics endpoint (0: a free one, printed at "
        "start; off: none)",
        check=metrics_port,
        metavar="PORT|0|off",
    )
    metrics_host: str = setting(
        "127.0.0.1", help="address the /metrics endpoint listens on (0.0.0.0 in a container)"
    )

    @property
    def metrics_on(self) -> bool:
        return self.metrics_port.strip().lower() != OFF


def new_registry() -> CollectorRegistry:
    """A registry with the process's own CPU, memory and file descriptors (``process_*``)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return registry


class MetricsServer(Lifecycle):
    """Serves ``GET /metrics`` of ``registry`` until stopped; ``url`` once started."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int, service: str) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.service = service
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: MetricsSettings, registry: CollectorRegistry, *, service: str
    ) -> MetricsServer | None:
        """The endpoint ``settings`` ask for; None with ``--metrics-port off``."""
        if not settings.metrics_on:
            return None
        return cls(
            registry, host=settings.metrics_host, port=int(settings.metrics_port), service=service
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def _start(self) -> None:
        if self._server is not None:
            return
        try:
            server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port={self.port}: cannot listen on {self.host}:{self.port} "
                f"({exc.strerror or exc})"
            ) from None
        self._server = server
        self.resources.push_async_callback(self._close)
        self.port = server.sockets[0].getsockname()[1]
        print(f"marketfeed metrics: {self.url} ({self.service})", flush=True)

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await cancel_all(self._handlers)

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._answer(reader, writer), name="metrics-scrape")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, kind = self._response(head)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if head.startswith(b"HEAD ") else body)
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a scraper that went away or sent no request: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _response(self, head: bytes) -> tuple[str, bytes, str]:
        if len(head) > _MAX_HEAD_BYTES:
            return "431 Request Header Fields Too Large", b"", "text/plain"
        parts = head.split(b" ", 2)
        method, path = parts[0], parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", b"GET /metrics\n", "text/plain"
        if path != b"/metrics":
            return "404 Not Found", b"see /metrics\n", "text/plain"
        return "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST


def find_metrics_url(text: str) -> str | None:
    """The last ``/metrics`` URL a process printed in ``text`` (its log), if any."""
    found = _LINE.findall(text)
    return found[-1][0] if found else None


async def open_metrics(
    resources: contextlib.AsyncExitStack,
    settings: MetricsSettings,
    registry: CollectorRegistry,
    *,
    service: str,
) -> MetricsServer | None:
    """Start the endpoint ``settings`` ask for into ``resources`` (closed with them)."""
    server = MetricsServer.from_settings(settings, registry, service=service)
    if server is not None:
        await resources.enter_async_context(server)
    return server
