"""The two kinds of embedded server: a Tansu Kafka-protocol broker and a Redis server.

Both listen on 127.0.0.1 only (Tansu's listener is IPv4; ``localhost`` may resolve to ::1 first)
on a free port, keep everything in memory, and are children of the process that starts them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import redis.asyncio as aioredis
import redis.exceptions

from common.errors import RuntimeStartError
from common.redisconn import UNAVAILABLE
from common.runtime.binaries import broker_binary, redis_binary
from common.runtime.process import ChildProcess, free_port, tcp_accepts

HOST = "127.0.0.1"


class EmbeddedBroker(ChildProcess):
    """Tansu with its memory engine: data and committed offsets vanish when it stops."""

    def __init__(self, *, log_path: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port(HOST)
        url = f"tcp://{HOST}:{self.port}"
        super().__init__(
            name="broker",
            argv=[
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            ready=lambda: tcp_accepts(HOST, self.port),
            log_path=log_path,
        )

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


class EmbeddedRedis(ChildProcess):
    """A Redis server without persistence: a cache that can always be rebuilt from the feed."""

    def __init__(self, *, name: str, log_path: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port(HOST)
        super().__init__(
            name=f"redis[{name}]",
            argv=[
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            ready=self._pings,
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def _pings(self) -> bool:
        client = aioredis.Redis(host=HOST, port=self.port, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except UNAVAILABLE:
            return False
        finally:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await client.aclose()


__all__ = ["HOST", "EmbeddedBroker", "EmbeddedRedis", "RuntimeStartError"]
