"""How a service waits for a Redis server it depends on, and how it names it in a log line.

A quote cache, order_entry's ledger and portfolio's positions each hold their flow while their
Redis is away rather than drop what is in hand. They all go through a ``Retry`` (one log line
when the server goes, one when it is back) named after the server as "SERVICE: Redis at URL",
the URL without its credentials. At start-up a server that never answers is one readable
error, not a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from common.errors import CacheUnavailableError
from common.logs import redact_url
from common.retry import Backoff, GiveUp, Retry, describe

log = logging.getLogger(__name__)

# What "the server is away" looks like to redis-py: it refused, did not answer, or the socket
# broke. A wider set (read-only replica, out of memory) is the caller's choice.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
_BACKOFF = Backoff()


def redis_retry(
    owner: str,
    url: str,
    *,
    errors: tuple[type[BaseException], ...] = UNAVAILABLE,
    backoff: Backoff = _BACKOFF,
    logger: logging.Logger = log,
) -> Retry:
    """The ``Retry`` of ``owner``'s Redis at ``url``."""
    return Retry(
        f"{owner}: Redis at {redact_url(url)}",
        errors=errors,
        fatal=REFUSED,
        backoff=backoff,
        logger=logger,
    )


# The server answered but will not let us in: waiting does not help a wrong password, so a
# start-up deadline ends at once (a running service still waits: its Redis may be coming back
# with the right configuration).
REFUSED: tuple[type[BaseException], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.NoPermissionError,
)


def problem(url: str, exc: BaseException) -> str:
    """One line for a Redis error: the server (without its password) and what went wrong."""
    where = redact_url(url)
    if isinstance(exc, REFUSED):
        has_password = ":***@" in where or "password=***" in where
        if not has_password and not isinstance(exc, redis.exceptions.NoPermissionError):
            return f"Redis at {where} requires a password, and the URL gives none"
        return f"Redis at {where} refused the credentials: {describe(exc)}"
    return f"cannot reach Redis at {where}: {describe(exc)}"


def client_url(client: aioredis.Redis) -> str:
    """Where ``client`` connects, as a URL for messages (the password masked)."""
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    scheme = "rediss" if "ssl_ca_certs" in kwargs or "ssl_cert_reqs" in kwargs else "redis"
    host, port, db = kwargs.get("host", "?"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{auth}{host}:{port}/{db}"


def unreachable(url: str) -> GiveUp:
    """A ``give_up`` for a start-up deadline: one line naming the server (the program's name
    comes first on the command line, so the owner is left out)."""

    def give_up(exc: BaseException, spent: float) -> CacheUnavailableError:
        if isinstance(exc, REFUSED):
            return CacheUnavailableError(problem(url, exc))
        return CacheUnavailableError(
            f"cannot reach Redis at {redact_url(url)} after {spent:.0f}s: {describe(exc)}"
        )

    return give_up
