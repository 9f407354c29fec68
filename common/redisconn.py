"""How a service waits for a Redis server it depends on, and how it names it in a log line.

A quote cache, order_entry's ledger and portfolio's positions each hold their flow while their
Redis is away rather than drop what is in hand. They all go through a ``Retry`` (one log line
when the server goes, one when it is back) named after the server as "SERVICE: Redis at URL",
the URL without its credentials. At start-up a server that never answers is one readable
error, not a traceback.
"""

from __future__ import annotations

import logging

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
        f"{owner}: Redis at {redact_url(url)}", errors=errors, backoff=backoff, logger=logger
    )


def unreachable(url: str) -> GiveUp:
    """A ``give_up`` for a start-up deadline: one line naming the server (the program's name
    comes first on the command line, so the owner is left out)."""

    def give_up(exc: BaseException, spent: float) -> CacheUnavailableError:
        return CacheUnavailableError(
            f"cannot reach Redis at {redact_url(url)} after {spent:.0f}s: {describe(exc)}"
        )

    return give_up
