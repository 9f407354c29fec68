"""Plausibility of market data, whatever its signature says: defence in depth.

A stolen key or a publisher bug can sign a quote that would freeze a symbol: an ``epoch`` or a
``ts_ns`` in the future (every real quote after it looks older; it never looks stale), or a
``seq`` far ahead of the cached one (every real quote after it is dropped as a duplicate).
Such a quote is dead-lettered; a ``seq`` jump also asks the publisher for a snapshot of the
symbol (its signed snapshot is authoritative) rather than leave the symbol where it was.

Pure logic, no I/O: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.schema import Quote

# (publisher epoch, seq), as the caches order quotes.
Version = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Plausibility:
    max_clock_skew_s: float  # how far in the future an epoch or a ts_ns may be
    max_seq_jump: int  # how far past the cached seq, in the same epoch

    def clock_reason(self, quote: Quote, now_ns: int) -> str | None:
        """Why the quote's times are implausible at ``now_ns`` (None if they are not)."""
        limit_ns = now_ns + int(self.max_clock_skew_s * 1e9)
        if quote.ts_ns > limit_ns:
            ahead = (quote.ts_ns - now_ns) / 1e9
            return f"implausible: ts_ns is {ahead:.1f}s in the future"
        # The epoch is the publisher's start time in ms.
        if quote.epoch * 1_000_000 > limit_ns:
            ahead = (quote.epoch * 1_000_000 - now_ns) / 1e9
            return f"implausible: epoch is {ahead:.1f}s in the future"
        return None

    def seq_reason(self, quote: Quote, cached: Version | None) -> str | None:
        """Why the quote's seq is an implausible jump from ``cached`` (None if it is not)."""
        if cached is None or quote.epoch != cached[0]:
            return None
        jump = quote.seq - cached[1]
        if jump > self.max_seq_jump:
            return f"implausible: seq jumps by {jump:,} (more than {self.max_seq_jump:,})"
        return None
