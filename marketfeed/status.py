"""The status line of ``marketfeed up``: high watermarks in, one line of figures out (no I/O).

Published totals and rates are sums over the partitions of the market-data topics (quotes and
trades); the order topics are shown beside them, so that a stalled order flow or an order_entry
that stopped answering shows at a glance. Rates are per second since the previous line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from common.topics import Topics


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

    @property
    def watched(self) -> list[str]:
        """The topics whose high watermarks the line shows."""
        t = self.topics
        return [*t.market_data, t.orders_commands, t.orders_events]

    def line(self, marks: Mapping[Partition, int], now: float, alerts: Sequence[str] = ()) -> str:
        """One status line from the high watermark of each partition of ``watched``, with
        ``alerts`` (a server that does not answer) at its end."""
        t = self.topics
        hw = {name: sum(o for tp, o in marks.items() if tp.topic == name) for name in self.watched}
        published, orders = sum(hw[name] for name in t.market_data), hw[t.orders_commands]
        since = now - (self.started if self._at is None else self._at)
        rate = (published - self._published) / since
        order_rate = (orders - self._orders) / since
        self._published, self._orders, self._at = published, orders, now
        return (
            f"[{now - self.started:6.0f}s] published {published:>12,}  {rate:>9,.0f} msg/s  | "
            + "  ".join(f"{name} hw {hw[name]:,}" for name in t.market_data)
            + f"  | {t.orders_commands} hw {orders:,} ({order_rate:,.1f}/s)"
            + f"  {t.orders_events} hw {hw[t.orders_events]:,}"
            + "".join(f"  | {alert}" for alert in alerts)
        )

    def alert(self, now: float, alerts: Sequence[str]) -> str:
        """The line shown instead while the figures cannot be read: the alerts alone."""
        return f"[{now - self.started:6.0f}s] " + " | ".join(alerts)
