"""Generations of the quote topic, as the broker lists them: the current one, rolled, deleted.

On a broker that does not enforce retention (the embedded one) the publisher writes the quote
topic as generations, ``<quotes>.g<N>``, and deletes old ones (issue 10). The soak does not ask
the publisher: it lists the broker's topics at each sample, so what it counts is what the broker
holds. Generations are numbered in order, so one rolled and deleted between two samples is still
counted: rolled = the newest generation seen - the newest at the first look; deleted = the
generations from the oldest at the first look on that no longer exist. Where the quote topic is
one plain topic (Apache Kafka, which enforces retention; or a publisher that does not roll)
there is nothing to count, and the figures are "n/a". No I/O: the sampler lists the topics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from common.generations.naming import Generations


@dataclass(frozen=True, slots=True)
class GenerationCounts:
    current: int  # the newest generation on the broker
    existing: int  # generations on the broker now
    rolled: int  # rolls since the soak began watching
    deleted: int  # generations deleted since then


class GenerationTracker:
    """Counts generations of ``quotes_topic`` from successive listings of topic names (no I/O)."""

    def __init__(self, quotes_topic: str) -> None:
        self._topic = quotes_topic
        self._first: int | None = None  # the oldest generation at the first look
        self._current_first = 0  # the newest at the first look
        self._newest: int | None = None

    def update(self, topics: Iterable[str]) -> GenerationCounts | None:
        """What ``topics`` (every topic the broker has now) say; None: not rolled (n/a)."""
        # The names are parsed as every reader of the feed parses them (common.generations).
        numbers = {g for g in Generations.from_names(self._topic, topics).numbers if g > 0}
        if not numbers:
            return None
        if self._first is None:
            self._first, self._current_first = min(numbers), max(numbers)
        self._newest = max(self._newest or 0, *numbers)
        oldest = min(numbers)
        return GenerationCounts(
            current=max(numbers),
            existing=len(numbers),
            rolled=self._newest - self._current_first,
            # Every generation from the first one seen up to the oldest one left is gone, and
            # so is any gap between the ones left.
            deleted=max(0, oldest - self._first)
            + sum(1 for n in range(oldest, self._newest + 1) if n not in numbers),
        )
