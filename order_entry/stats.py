"""What order_entry's processor counts, and the line that reports it.

A command counts once it is answered and acked to faust: not when it is delivered, since a
command revoked while it waited, or held while Redis was away, is answered later or by another
process. Its outcome counts too when this process decided it, first time or recovered after a
restart (the events recorded before the crash are the decision); a duplicate decides nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from common.errors import SchemaError
from common.schema import decode
from common.schema.orders import TERMINAL_EVENTS, OrderKind, OrderRejected


@dataclass(frozen=True, slots=True)
class Decided:
    """How an order was answered: its terminal event's kind, and a rejection's reason code."""

    kind: OrderKind
    reason: str | None = None

    @classmethod
    def of(cls, event: object) -> Decided | None:
        if not isinstance(event, TERMINAL_EVENTS):
            return None
        return cls(event.TYPE, event.reason if isinstance(event, OrderRejected) else None)


@dataclass(slots=True)
class OrderStats:
    commands: int = 0  # answered and acked
    filled: int = 0
    cancelled: int = 0
    rejected: int = 0
    duplicates: int = 0  # already answered before: nothing emitted
    resent: int = 0  # recorded but not acknowledged before a restart: sent again
    recovered: int = 0  # recorded, not marked sent, but found on orders.events: not sent again
    dead_letters: int = 0  # no order id to answer to
    rejections: Counter[str] = field(default_factory=Counter)  # reason code -> rejected

    def answered(self, outcome: Decided | None) -> None:
        """One command acked; ``outcome``: how it was answered, if it was decided here."""
        self.commands += 1
        match outcome.kind if outcome is not None else None:
            case OrderKind.FILLED:
                self.filled += 1
            case OrderKind.CANCELLED:
                self.cancelled += 1
            case OrderKind.REJECTED:
                self.rejected += 1
                assert outcome is not None
                self.rejections[outcome.reason or "unknown"] += 1

    def describe(self) -> str:
        return (
            f"{self.commands} commands answered ({self.filled} filled, {self.cancelled}"
            f" cancelled, {self.rejected} rejected), {self.duplicates} duplicates,"
            f" {self.resent} resent, {self.recovered} recovered,"
            f" {self.dead_letters} dead-lettered"
        )


def outcome(events: list[bytes]) -> Decided | None:
    """How a recorded decision answered (None if its last event does not decode)."""
    try:
        last = decode(events[-1])
    except SchemaError:
        return None
    return Decided.of(last)
