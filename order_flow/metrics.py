"""The order flow's Prometheus collector: orders sent, acknowledged and failed, by kind.

Read at scrape time from ``OrderFlow.stats()``; nothing on the sending path changes for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.collectors import Families
from order_flow.mix import Kind

if TYPE_CHECKING:
    from order_flow.flow import OrderFlow

COUNTS = {
    "sent": "orders handed to the producer",
    "acked": "orders the broker acknowledged",
    "failed": "orders not sent or never acknowledged",
    "unpriced": "limit orders sent at market for want of a quote",
}


class FlowMetrics:
    def __init__(self, flow: OrderFlow) -> None:
        self.flow = flow

    def add_to(self, f: Families) -> None:
        s = self.flow.stats(lateness=False)
        f.counters(COUNTS, {k: getattr(s, k) for k in COUNTS}, "order_flow")
        for kind in Kind:
            f.counter(
                "order_flow_orders",
                "orders sent by kind of the simulated mix",
                s.by_kind.get(kind.value, 0),
                kind=kind.value,
            )
        f.histogram(self.flow.lateness_buckets)
