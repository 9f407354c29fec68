"""The soak's latency probe: publish -> readable in Redis, for every quote of a sample of symbols.

A feed has no request to time: a quote's *intended* time is its publish time (``ts_ns``, stamped
by the publisher as it sends), and it is served when it, or a newer quote of the same symbol,
becomes readable in a cache. The probe is a CachingConsumer of its own (the services' code, in
this process, on a Redis of its own), following the symbols order_entry trades, so it reads the
same partitions order_entry's cache reads, the same way; its ``on_applied`` hook sees each batch
once it is readable (its MULTI/EXEC returned).

Coordinated omission: a consumer that stalls and then catches up applies only the newest quote
of each symbol in a batch (conflation), so counting only applied quotes would drop exactly the
quotes that waited longest. Per-symbol sequence numbers go up by one, so an applied quote with
``seq`` standing after the last applied one of its symbol at ``last`` serves ``seq - last``
published quotes: each is counted, at the applied one's latency (a lower bound for the older
ones, which were published earlier). Quotes not readable yet at the end of a window are counted
in the window they become readable in; a window in which none became readable while the feed
flowed shows as empty, and the probe's own lag (read by the lag monitor like a service's) says
how far behind it was.

The probe shares its event loop with the soak's sampler, which wakes every ``--sample-every``
for a few milliseconds of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from common.cache import CacheSettings, CachingConsumer
from common.cache.batch import PreparedBatch, Version
from common.lifecycle import Lifecycle
from common.metrics import LatencyHistogram
from common.schema import Quote

SERVICE = "soak_probe"


def served(quotes: Iterable[Quote], last: dict[str, Version]) -> tuple[list[int], list[int]]:
    """Publish times of the applied ``quotes`` and how many published quotes each one serves.

    ``last`` (symbol -> (epoch, seq) of the last applied quote) is updated. A symbol seen for
    the first time, or in a new publisher epoch, serves one.
    """
    stamps: list[int] = []
    counts: list[int] = []
    for quote in quotes:
        before = last.get(quote.symbol)
        count = 1
        if before is not None and before[0] == quote.epoch and quote.seq > before[1]:
            count = quote.seq - before[1]
        last[quote.symbol] = (quote.epoch, quote.seq)
        stamps.append(quote.ts_ns)
        counts.append(count)
    return stamps, counts


@dataclass(frozen=True, slots=True)
class ProbeWindow:
    """What became readable since the previous window."""

    histogram: LatencyHistogram
    applied: int  # quotes applied by the probe
    served: int  # published quotes they served (>= applied; the histogram's count)


class LatencyProbe(Lifecycle):
    def __init__(self, settings: CacheSettings, symbols: Sequence[str]) -> None:
        self.consumer = CachingConsumer(
            settings, service=SERVICE, interest=symbols, on_applied=self._applied
        )
        self._window = LatencyHistogram()
        self._applied_count = 0
        self._last: dict[str, Version] = {}

    async def _start(self) -> None:
        await self.resources.enter_async_context(self.consumer)

    def _applied(self, batch: PreparedBatch, now_ns: int) -> None:
        stamps, counts = served((quote for quote, _ in batch.quotes.values()), self._last)
        if stamps:
            ages = (now_ns - np.asarray(stamps, dtype=np.int64)) / 1e9
            self._window.record_seconds(ages, counts)
            self._applied_count += len(stamps)

    def take_window(self) -> ProbeWindow:
        """The window since the previous call; a new one begins."""
        window = ProbeWindow(self._window, self._applied_count, self._window.count)
        self._window = LatencyHistogram()
        self._applied_count = 0
        return window
