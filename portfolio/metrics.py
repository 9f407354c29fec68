"""portfolio's Prometheus collector: fills applied to positions, the keeper's Redis.

Read at scrape time from the position keeper's counters and the ``Retry`` of the Redis that
holds positions; the quote cache has its own collector (``common.cache.metrics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.collectors import Families

if TYPE_CHECKING:
    from portfolio.service import PortfolioService

# PositionKeeper field -> what ``marketfeed_positions_KEY_total`` counts.
COUNTS = {
    "applied": "fills applied to positions",
    "redelivered": "fills delivered again and skipped (already applied)",
    "dead_letters": "records of orders.events that are not valid events, dead-lettered",
}


class PositionMetrics:
    def __init__(self, owner: PortfolioService) -> None:
        self.owner = owner

    def add_to(self, f: Families) -> None:
        keeper = self.owner.keeper
        f.counters(COUNTS, {k: getattr(keeper, k) for k in COUNTS}, "positions")
        held = len(self.owner.held)
        f.gauge("positions_symbols_held", "symbols some account holds a position in", held)
        f.retries("positions", {"redis": keeper.store_retry})
