"""Topic names, partition count and record keys: built here and nowhere else.

A ``prefix`` namespaces every topic, so that tests (and several demo stacks on one broker) can
share a broker without seeing each other's records.
"""

from __future__ import annotations

from dataclasses import dataclass

# Quotes, trades and orders share this partition count so that orders are co-partitioned with
# the quotes of their symbol (same key, same murmur2 partition).
DEFAULT_PARTITIONS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Topics:
    prefix: str = ""

    @property
    def quotes(self) -> str:
        return f"{self.prefix}md.quotes"

    @property
    def trades(self) -> str:
        return f"{self.prefix}md.trades"

    @property
    def snapshot_requests(self) -> str:
        return f"{self.prefix}md.snapshot.requests"

    def snapshot_replies(self, service: str) -> str:
        """The reply topic of one service's snapshot requests (one partition)."""
        return f"{self.prefix}md.snapshot.replies.{service}"

    @property
    def orders_commands(self) -> str:
        return f"{self.prefix}orders.commands"

    @property
    def orders_events(self) -> str:
        return f"{self.prefix}orders.events"

    def dead_letter(self, service: str) -> str:
        """Where ``service`` puts the records it could not use, with the reason."""
        return f"{self.prefix}dlq.{service}"

    @property
    def market_data(self) -> tuple[str, str]:
        return (self.quotes, self.trades)


def symbol_key(symbol: str) -> bytes:
    """The record key of every message about ``symbol``: its ASCII bytes."""
    return symbol.encode("ascii")
