"""The Redis keys of one quote cache, built here and nowhere else.

Layout (``P`` is the configured prefix, ``mf:`` by default):

- ``P q:SYMBOL``: the cached quote: the msgpack bytes exactly as published (decode with the
  shared schema);
- ``P offsets``: hash partition -> offset of the last record applied (consumption resumes
  after it), -1 when none yet in its generation; ``P gen``: hash partition -> the generation
  that offset is in (``common.generations``; absent: 0, the plain topic);
  ``P part_ts``: hash partition -> publish time (ns) of the last quote applied;
  ``P part_kts``: hash partition -> Kafka timestamp (ms) of the last record applied, filtered
  or not; ``P hw``: hash partition -> high watermark seen by the last fetch;
- ``P stats``: hash of counters (received, filtered, applied, conflated, stale, gaps,
  dead_letters, ...);
- ``P interest``: set of the symbols the cache follows now;
- ``P meta``: hash: service, topic, partitions, assigned, instance, started_ns, heartbeat_ns,
  start (how the cache was filled: resume, snapshot or replay).

Quotes and the offsets they came with are written in one MULTI/EXEC, so a reader (or a restart)
never sees one without the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StartMode(StrEnum):
    """How a cache was filled when it started: ``P meta`` ``start``, these exact strings."""

    RESUME = "resume"  # from the offsets it had stored: every symbol was cached
    SNAPSHOT = "snapshot"  # missing symbols from the publisher's snapshot, then its offsets
    REPLAY = "replay"  # no snapshot answer: their partitions from the beginning


@dataclass(frozen=True, slots=True)
class CacheKeys:
    prefix: str = "mf:"

    def quote(self, symbol: str) -> str:
        return f"{self.prefix}q:{symbol}"

    @property
    def offsets(self) -> str:
        return f"{self.prefix}offsets"

    @property
    def generations(self) -> str:
        return f"{self.prefix}gen"

    @property
    def part_ts(self) -> str:
        return f"{self.prefix}part_ts"

    @property
    def part_kts(self) -> str:
        return f"{self.prefix}part_kts"

    @property
    def hw(self) -> str:
        return f"{self.prefix}hw"

    @property
    def stats(self) -> str:
        return f"{self.prefix}stats"

    @property
    def interest(self) -> str:
        return f"{self.prefix}interest"

    @property
    def meta(self) -> str:
        return f"{self.prefix}meta"

    @property
    def partition_hashes(self) -> tuple[str, ...]:
        return (self.offsets, self.generations, self.part_ts, self.part_kts, self.hw)
