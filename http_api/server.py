"""The API server: the Backend and uvicorn, under one Lifecycle.

``start()`` starts the Backend, then uvicorn on ``host:port`` (0: a free port), and returns
once it listens; ``url`` is where. ``stop()`` ends the quote streams first (an open stream
would hold uvicorn's graceful shutdown), then uvicorn, then the Backend. uvicorn's own signal
handling is off: the caller owns SIGINT/SIGTERM (``common.service.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from common.errors import MarketfeedError
from common.lifecycle import Lifecycle, cancel_and_wait, first_of
from http_api.app import create_app
from http_api.backend import Backend
from http_api.config import ApiConfig, Resolved

_GRACE_S = 2


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's signals are its owner's, not uvicorn's


class ApiServer(Lifecycle):
    def __init__(self, config: ApiConfig, resolved: Resolved) -> None:
        self.config = config
        self.backend = Backend(config, resolved)
        self.app = create_app(self.backend, token=config.api_token)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    async def _start(self) -> None:
        await self.resources.enter_async_context(self.backend)
        server = _Server(
            uvicorn.Config(
                self.app,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=_GRACE_S,
            )
        )
        # Bound here, not by uvicorn: a port in use is then one line, where uvicorn would
        # call sys.exit() inside its task.
        sock = self._listen()
        self.resources.callback(sock.close)
        self.port = sock.getsockname()[1]
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="api-uvicorn")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise MarketfeedError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    def _listen(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        try:
            sock = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            raise MarketfeedError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        sock.set_inheritable(True)
        return sock

    async def stop(self) -> None:
        await self.backend.hub.stop()  # open streams end, so uvicorn's shutdown need not wait
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            await asyncio.wait([task], timeout=_GRACE_S + 1)
            if server is not None and not task.done():
                server.force_exit = True  # stop waiting for connections and tasks
                await asyncio.wait([task], timeout=1)
            await cancel_and_wait(task)
        await super().stop()

    async def wait(self) -> None:
        """Until uvicorn ends or a part of the backend fails for good (raises why)."""
        assert self._task is not None, "not started"
        # Shielded: a cancelled wait (a stop was asked for) must not cancel uvicorn half-way
        # through its main loop, which would skip its shutdown; stop() ends it in order.
        await first_of(asyncio.shield(self._task), self.backend.wait())
