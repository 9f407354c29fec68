"""Positions marked to market: what ``marketfeed positions`` and ``GET /v1/positions`` answer.

Reads portfolio's Redis only (its positions and its quote cache); a mark never comes from a
call to the publisher. A mark older than the reader's ``stale_after`` is flagged stale; a
missing one is shown as such and its unrealised P&L left out rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.cache.reader import QuoteReader
from common.errors import CacheUnavailableError
from common.redisconn import UNAVAILABLE, client_url, problem
from portfolio.positions import Position, PositionStore


@dataclass(frozen=True, slots=True)
class MarkedPosition:
    position: Position
    mark: float | None
    mark_age_s: float | None
    stale: bool

    @property
    def unrealised(self) -> float | None:
        return None if self.mark is None else self.position.unrealised(self.mark)

    def as_dict(self) -> dict[str, Any]:
        p = self.position
        return {
            "account": p.account,
            "symbol": p.symbol,
            "qty": p.qty,
            "avg_price": p.avg_price,
            "realised": p.realised,
            "mark": self.mark,
            "mark_age_s": None if self.mark_age_s is None else round(self.mark_age_s, 6),
            "stale": self.stale,
            "unrealised": self.unrealised,
        }


async def marked_positions(
    reader: QuoteReader, *, prefix: str, accounts: Iterable[str] = ()
) -> list[MarkedPosition]:
    """Every position of ``accounts`` (all if none), marked to the mid of the cached quote."""
    store = PositionStore(reader.client, prefix=prefix)
    try:
        positions = await store.all(accounts)
    except UNAVAILABLE as exc:
        # One line, as the reader's own errors are, not a traceback.
        where = client_url(reader.client)
        raise CacheUnavailableError(f"cannot read the positions: {problem(where, exc)}") from None
    marks = await reader.get_many(p.symbol for p in positions)
    rows = []
    for p in positions:
        cached = marks.get(p.symbol)
        if cached is None:
            rows.append(MarkedPosition(p, None, None, False))
        else:
            rows.append(MarkedPosition(p, cached.quote.mid, cached.age_s, cached.stale))
    return rows
