"""order_entry's Prometheus collector: order outcomes by reason, the processor's state.

Read at scrape time from the processor's ``OrderStats`` (counted once a command is answered and
acked) and its retry states; the quote cache has its own collector (``common.cache.metrics``).
"""

from __future__ import annotations

from common.collectors import Families
from common.schema.orders import REJECT_REASONS
from order_entry.processor import OrderProcessor

# OrderStats field -> what ``marketfeed_orders_KEY_total`` counts.
COUNTS = {
    "commands": "commands answered and acked (a duplicate or a dead letter included)",
    "duplicates": "commands already answered before: nothing emitted",
    "resent": "decisions recorded before a restart and sent again",
    "recovered": "decisions recorded before a restart, found on orders.events: not sent again",
    "dead_letters": "commands without an order id, sent to the dead-letter topic",
}
OUTCOMES = ("filled", "cancelled", "rejected")


class OrderMetrics:
    def __init__(self, processor: OrderProcessor) -> None:
        self.processor = processor

    def add_to(self, f: Families) -> None:
        p = self.processor
        stats = p.stats
        f.counters(COUNTS, {k: getattr(stats, k) for k in COUNTS}, "orders")
        doc = "orders decided here by outcome; reason: a rejection's reason code (else empty)"
        for name in ("filled", "cancelled"):
            f.counter("orders_outcomes", doc, getattr(stats, name), outcome=name, reason="")
        # Every known reason, zero included, so that a rate() sees the first one.
        for reason in sorted(REJECT_REASONS | set(stats.rejections)):
            f.counter(
                "orders_outcomes", doc, stats.rejections[reason], outcome="rejected", reason=reason
            )
        f.gauge("orders_partitions", "order partitions assigned to this process", len(p.assigned))
        f.counter("orders_rebalances", "rebalances of the order group seen", p.rebalances)
        f.retries("orders", p.retries)
