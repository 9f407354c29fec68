"""The embedded stack: one broker and one Redis server per consuming service.

Used alike by ``marketfeed up``, the benchmark and the test suite, as an async context manager
that starts the servers in order and stops them in reverse order, whatever happens in between.
With a ``data_dir`` each Redis server keeps an append-only file in a directory of its own there
(starting empty: what an earlier run left is removed) and can be restarted on it. With
``passwords`` each Redis server gets a password of its own, generated for the run (its URL
carries it).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from common.errors import RuntimeStartError
from common.kafkasec import PLAINTEXT, KafkaSecurity, SecurityProtocol
from common.lifecycle import Lifecycle
from common.runtime.pki import issue_pki
from common.runtime.process import ChildProcess, free_port
from common.runtime.servers import HOST, BrokerTls, EmbeddedBroker, EmbeddedRedis, forget_data

log = logging.getLogger(__name__)

DEFAULT_SERVICES = ("order_entry", "portfolio")
# A free port found by bind-and-close can be taken by someone else before the server binds it.
_START_ATTEMPTS = 3

P = TypeVar("P", bound=ChildProcess)


async def start_on_free_port(make: Callable[[], P]) -> P:
    """Start the server ``make()`` builds, on a fresh free port each time, a few times."""
    error: RuntimeStartError | None = None
    for _ in range(_START_ATTEMPTS):
        server = make()
        try:
            await server.start()
        except RuntimeStartError as exc:
            error = exc
            continue
        return server
    assert error is not None
    raise error


class EmbeddedStack(Lifecycle):
    """A broker and per-service Redis servers, all children of this process."""

    def __init__(
        self,
        *,
        services: Sequence[str] = DEFAULT_SERVICES,
        log_dir: Path | None = None,
        with_broker: bool = True,
        data_dir: Path | None = None,
        passwords: bool = False,
        tls_dir: Path | None = None,
    ) -> None:
        """``tls_dir``: put a TLS terminator in front of the broker, with the run's CA and
        certificates kept there (clients then need ``security``)."""
        self.services = tuple(services)
        self.passwords = passwords
        self.tls_dir = tls_dir
        self.tls: BrokerTls | None = None
        self.security: KafkaSecurity = PLAINTEXT
        self.log_dir = log_dir
        self.data_dir = data_dir
        self.with_broker = with_broker
        self.broker: EmbeddedBroker | None = None
        self.redis: dict[str, EmbeddedRedis] = {}

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    @property
    def bootstrap(self) -> str:
        if self.broker is None:
            raise RuntimeStartError("the embedded broker is not running")
        return self.broker.bootstrap

    def redis_url(self, service: str) -> str:
        return self.redis[service].url

    @property
    def processes(self) -> list[ChildProcess]:
        tls = [self.tls] if self.tls else []
        return ([self.broker] if self.broker else []) + tls + list(self.redis.values())

    async def _start(self) -> None:
        if self.with_broker and self.tls_dir is not None:
            await self._start_tls_broker(self.tls_dir)
        elif self.with_broker:
            self.broker = await start_on_free_port(
                lambda: EmbeddedBroker(log_path=self._log("broker"))
            )
            self.resources.push_async_callback(self.broker.stop)
        for service in self.services:
            data = self.data_dir / f"redis-{service}" if self.data_dir else None
            if data is not None:
                forget_data(data)
            password = secrets.token_urlsafe(24) if self.passwords else None
            server = await start_on_free_port(
                lambda s=service, d=data, p=password: EmbeddedRedis(  # type: ignore[misc]
                    name=s, log_path=self._log(f"redis-{s}"), data_dir=d, password=p
                )
            )
            self.redis[service] = server
            self.resources.push_async_callback(server.stop)

    async def _start_tls_broker(self, tls_dir: Path) -> None:
        pki = issue_pki(tls_dir)
        tls_port = free_port(HOST)
        self.broker = await start_on_free_port(
            lambda: EmbeddedBroker(log_path=self._log("broker"), advertised_port=tls_port)
        )
        self.resources.push_async_callback(self.broker.stop)
        broker_port = self.broker.port
        self.tls = await start_on_free_port(
            lambda: BrokerTls(
                pki=pki, broker_port=broker_port, port=tls_port, log_path=self._log("broker-tls")
            )
        )
        self.resources.push_async_callback(self.tls.stop)
        self.security = KafkaSecurity(
            security_protocol=SecurityProtocol.SSL.value,
            ssl_cafile=pki.ca,
            ssl_certfile=pki.client.cert,
            ssl_keyfile=pki.client.key,
        )

    async def restart_redis(self, service: str) -> EmbeddedRedis:
        """Start ``service``'s Redis again on its port and data directory (it has exited)."""
        old = self.redis[service]
        await old.kill()  # reaps it, and closes its log file; a no-op if it is gone
        server = old.again()
        await server.start()
        self.redis[service] = server
        self.resources.push_async_callback(server.stop)
        return server

    async def restart_broker(self) -> None:
        """A new broker in place of the running one (on a new port; the memory engine forgets all).

        For test runs: the embedded broker (Tansu 0.6.0) has been seen to stop answering
        altogether, even SIGTERM, and every later test would fail with it. So it is killed
        outright, not asked to stop.
        """
        old = self.broker
        if old is None:
            raise RuntimeStartError("the embedded broker is not running")
        await old.kill()
        self.broker = await start_on_free_port(lambda: EmbeddedBroker(log_path=self._log("broker")))
        self.resources.push_async_callback(self.broker.stop)
