"""Embedded runtime: the broker and Redis servers a laptop run or a test suite starts itself."""

from common.runtime.process import ChildProcess, free_port
from common.runtime.servers import HOST, EmbeddedBroker, EmbeddedRedis
from common.runtime.stack import DEFAULT_SERVICES, EmbeddedStack

__all__ = [
    "DEFAULT_SERVICES",
    "HOST",
    "ChildProcess",
    "EmbeddedBroker",
    "EmbeddedRedis",
    "EmbeddedStack",
    "free_port",
]
