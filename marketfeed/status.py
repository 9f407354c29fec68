"""The status line of ``marketfeed up``: high watermarks in, one line of figures out (no I/O).

Published totals and rates are sums over the partitions of the market-data topics (quotes and
trades), across their generations (``common.generations.naming.GenerationWatch``: a deleted
generation still counts); beside each, the generation being written and how many records it
holds. The broker's memory follows (generations exist to keep it flat), then the order topics,
so that a stalled order flow or an order_entry that stopped answering shows at a glance. Rates
are per second since the previous line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from common.generations.naming import GenerationWatch
from common.topics import Topics

# (generation, partition) -> high watermark, for every generation of one market-data topic.
GenerationMarks = Mapping[tuple[int, int], int]


class Partition(Protocol):
    """A key of the watermark map (aiokafka's TopicPartition)."""

    @property
    def topic(self) -> str: ...


@dataclass(slots=True)
class StatusLine:
    topics: Topics
    started: float  # time.monotonic() when up started
    _published: int = 0  # as of the previous line
    _orders: int = 0
    _at: float | None = None
    _feed: dict[str, GenerationWatch] = field(default_factory=dict)

    @property
    def watched(self) -> list[str]:
        """The order topics, whose high watermarks the line shows."""
        t = self.topics
        return [t.orders_commands, t.orders_events]

    def line(
        self,
        marks: Mapping[Partition, int],
        feed: Mapping[str, GenerationMarks],
        now: float,
        *,
        broker_rss_bytes: int | None = None,
        alerts: Sequence[str] = (),
    ) -> str:
        """One status line from the high watermark of each partition of ``watched`` (``marks``)
        and of every generation of each market-data topic (``feed``, by base name), with
        ``alerts`` (a server that does not answer) at its end."""
        t = self.topics
        hw = {name: sum(o for tp, o in marks.items() if tp.topic == name) for name in self.watched}
        for base in t.market_data:
            self._feed.setdefault(base, GenerationWatch()).update(feed.get(base, {}))
        published = sum(self._feed[base].published for base in t.market_data)
        orders = hw[t.orders_commands]
        since = now - (self.started if self._at is None else self._at)
        rate = (published - self._published) / since
        order_rate = (orders - self._orders) / since
        self._published, self._orders, self._at = published, orders, now
        memory = "?" if broker_rss_bytes is None else f"{broker_rss_bytes / 2**20:,.0f} MB"
        return (
            f"[{now - self.started:6.0f}s] published {published:>12,}  {rate:>9,.0f} msg/s  | "
            + "  ".join(_current(base, feed.get(base, {})) for base in t.market_data)
            + f"  | broker {memory}"
            + f"  | {t.orders_commands} hw {orders:,} ({order_rate:,.1f}/s)"
            + f"  {t.orders_events} hw {hw[t.orders_events]:,}"
            + "".join(f"  | {alert}" for alert in alerts)
        )

    def alert(self, now: float, alerts: Sequence[str]) -> str:
        """The line shown instead while the figures cannot be read: the alerts alone."""
        return f"[{now - self.started:6.0f}s] " + " | ".join(alerts)


def _current(base: str, marks: GenerationMarks) -> str:
    """``md.quotes g12 hw 4,567``: the generation being written and what it holds so far."""
    newest = max((g for g, _ in marks), default=0)
    held = sum(high for (g, _), high in marks.items() if g == newest)
    return f"{base}{f' g{newest}' if newest else ''} hw {held:,}"
