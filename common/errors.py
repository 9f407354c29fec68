"""The one root error type of marketfeed and its hierarchy.

Every error this project raises on purpose derives from :class:`MarketfeedError`, so that a
command-line entry point can catch exactly our errors (and print one line) while anything
unexpected still surfaces as a traceback.

Hierarchy::

    MarketfeedError                 (retriable: bool, class default False)
    ├── ConfigError                 bad flag, environment value or config file  -> exit code 2
    ├── SchemaError                 a message that is not a valid marketfeed message
    │   ├── DecodeError             bytes that are not msgpack, or not the expected shape
    │   └── ValidationError         decoded, but a value is out of its domain (NaN price, bid > ask)
    ├── RuntimeStartError           the embedded broker or a Redis server could not be started
    ├── BrokerUnavailableError      the Kafka bootstrap servers did not answer (retriable)
    ├── CacheUnavailableError       the Redis server of a cache did not answer (retriable)
    ├── StateNotFoundError          no running ``marketfeed up`` was found for a read command
    └── ProcessingFailed            a stream processor met an error it cannot get past: the
                                    service stops, and the record in hand is delivered again
"""

from __future__ import annotations


class MarketfeedError(Exception):
    """Root of every error marketfeed raises on purpose.

    ``retriable`` tells a caller whether the same operation may succeed if tried again later
    (a server that is down) or never will (a bad value).
    """

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class ConfigError(MarketfeedError):
    """A flag, environment variable or file given by the user has a bad value."""


class SchemaError(MarketfeedError):
    """A message does not follow the marketfeed wire format."""


class DecodeError(SchemaError):
    """The bytes are not msgpack, or not a map of the expected fields and types."""


class ValidationError(SchemaError):
    """The message decodes, but a value is outside its domain."""


class RuntimeStartError(MarketfeedError):
    """An embedded server (broker or Redis) could not be found or started."""


class BrokerUnavailableError(MarketfeedError):
    """The Kafka bootstrap servers could not be reached."""

    retriable = True


class CacheUnavailableError(MarketfeedError):
    """A Redis server backing a quote cache could not be reached."""

    retriable = True


class StateNotFoundError(MarketfeedError):
    """A read command found no running ``marketfeed up`` and was given no addresses."""


class ProcessingFailed(MarketfeedError):
    """A stream processor cannot go on; the record in hand was not acked and will come again.

    Stopping is the safe answer to an error nobody planned for: faust would restart the agent
    without the record in hand and could then commit past it.
    """
