"""Looking quotes up in a service's cache: what ``marketfeed quote`` and ``GET /v1/quotes`` answer.

One answer per symbol asked for, by these rules, so the command line and the HTTP API agree by
construction: a symbol outside the service's interest is ``not-of-interest`` (asking is not an
error; its value is shown if the cache still holds one); one of interest that the cache holds
is ``cached``; one it does not hold yet (a cold cache) is fetched from the publisher by a
snapshot request (``snapshot``), else ``missing``. The cache is never written here: it has one
writer, its service. How a snapshot is fetched is the caller's (a one-off client for a command,
a long-lived one for a server).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.cache.reader import CachedQuote, QuoteReader
from common.cache.snapshots import Snapshot
from common.schema import Quote

# Asks the publisher for the snapshot of some symbols; None if no answer came in time.
FetchSnapshot = Callable[[list[str]], Awaitable[Snapshot | None]]


class QuoteStatus(StrEnum):
    """Where the answer for one symbol came from (the JSON ``status``, these exact strings)."""

    CACHED = "cached"
    SNAPSHOT = "snapshot"
    MISSING = "missing"
    NOT_OF_INTEREST = "not-of-interest"


@dataclass(frozen=True, slots=True)
class QuoteRow:
    symbol: str
    status: QuoteStatus
    quote: Quote | None = None
    age_s: float | None = None
    stale: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbol, "status": self.status.value}
        if self.quote is not None:
            q = self.quote
            out |= {
                "bid": q.bid,
                "ask": q.ask,
                "bid_size": q.bid_size,
                "ask_size": q.ask_size,
                "epoch": q.epoch,
                "seq": q.seq,
                "ts_ns": q.ts_ns,
                "age_s": round(self.age_s or 0.0, 6),
                "stale": self.stale,
            }
        return out


def cached_row(symbol: str, status: QuoteStatus, hit: CachedQuote | None) -> QuoteRow:
    if hit is None:
        return QuoteRow(symbol, status)
    return QuoteRow(symbol, status, hit.quote, hit.age_s, hit.stale)


def snapshot_rows(snapshot: Snapshot, stale_after: float) -> dict[str, QuoteRow]:
    """The quotes of a publisher's snapshot as rows, aged as of now."""
    now = time.time_ns()
    out = {}
    for quote, _ in snapshot.quotes:
        age = max(0.0, (now - quote.ts_ns) / 1e9)
        out[quote.symbol] = QuoteRow(
            quote.symbol, QuoteStatus.SNAPSHOT, quote, age, age > stale_after
        )
    return out


async def lookup(
    reader: QuoteReader, symbols: Sequence[str], fetch: FetchSnapshot | None = None
) -> list[QuoteRow]:
    """One row per symbol of ``symbols``, in their order (see the module's rules).

    ``fetch`` None: symbols of interest missing from the cache are reported ``missing``.
    """
    interest = await reader.interest()
    cached = await reader.get_many(symbols)
    rows: dict[str, QuoteRow] = {}
    missing = []
    for symbol in dict.fromkeys(symbols):
        hit = cached.get(symbol)
        if symbol not in interest:
            rows[symbol] = cached_row(symbol, QuoteStatus.NOT_OF_INTEREST, hit)
        elif hit is None:
            missing.append(symbol)
        else:
            rows[symbol] = cached_row(symbol, QuoteStatus.CACHED, hit)
    if missing and fetch is not None:
        snapshot = await fetch(missing)
        if snapshot is not None:
            found = snapshot_rows(snapshot, reader.stale_after)
            rows |= {s: found[s] for s in missing if s in found}
    for symbol in missing:
        rows.setdefault(symbol, QuoteRow(symbol, QuoteStatus.MISSING))
    return [rows[s] for s in symbols]
