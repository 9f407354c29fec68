"""One fetched batch -> what to write: filter by key, decode, drop stale, conflate, dead-letter.

Pure logic, no I/O: the consumer hands it what one fetch read of each partition (a Chunk, cut
at a rollover marker by ``common.generations``) and the per-symbol versions it has cached; it
returns the newest quote per symbol, the per-partition progress (where each partition goes on,
in the next generation after a marker), the records to dead-letter and the counts. Filtering
happens on the record key, before any value is decoded: records of symbols outside the interest
cost one set lookup. A marker was taken out by its key before that, so its reserved key is
never dead-lettered as "not a symbol"; a marker whose value cannot be read is dead-lettered
(the partition still moves on to the next generation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from common.errors import SchemaError
from common.generations.position import Position
from common.generations.rollover import Chunk, KafkaRecord
from common.schema import Quote, check_symbol, decode_quote

Version = tuple[int, int]  # (publisher epoch, seq)


@dataclass(slots=True)
class Rejected:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    topic: str | None = None  # where the record was, when not the caller's one topic


@dataclass(slots=True)
class PartitionProgress:
    last_offset: int  # in ``generation``; the marker's, when one ended the generation
    kafka_ts_ms: int
    last_quote_ts_ns: int | None = None
    generation: int = 0
    next: Position = field(default_factory=lambda: Position(0, 0))  # where the partition goes on
    records: int = 0  # moved past: the records read and the marker, if one ended the chunk


@dataclass(slots=True)
class PreparedBatch:
    quotes: dict[str, tuple[Quote, bytes]] = field(default_factory=dict)
    progress: dict[int, PartitionProgress] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    gaps: set[str] = field(default_factory=set)
    received: int = 0
    filtered: int = 0
    stale: int = 0
    conflated: int = 0
    rollovers: int = 0  # partitions that crossed a rollover marker

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "filtered": self.filtered,
            "applied": len(self.quotes),
            "conflated": self.conflated,
            "stale": self.stale,
            "gaps": len(self.gaps),
            "dead_letters": len(self.rejected),
            "rollovers": self.rollovers,
        }


class KeyFilter:
    """Which record keys are of interest, and which keys are not symbols at all."""

    def __init__(self, interest: Iterable[str]) -> None:
        self.wanted = {s.encode("ascii") for s in interest}
        self._valid: set[bytes] = set(self.wanted)

    def unseen(self, records: Sequence[KafkaRecord]) -> list[KafkaRecord]:
        """Records whose key is neither wanted nor already known to be a valid symbol."""
        valid, wanted = self._valid, self.wanted
        return [r for r in records if r.key not in wanted and r.key not in valid]

    def reason_if_bad(self, key: bytes | None) -> str | None:
        """None for a well-formed symbol key, else why it is not one."""
        if key is None:
            return "record has no key"
        if key in self._valid:
            return None
        try:
            check_symbol(key.decode("ascii"))
        except (UnicodeDecodeError, SchemaError) as exc:
            return f"key {key[:40]!r} is not a symbol: {exc}"
        # Bounded by the number of distinct symbols on the topic.
        self._valid.add(key)
        return None


def prepare(
    chunks: Mapping[int, Chunk],
    keys: KeyFilter,
    versions: dict[str, Version],
) -> PreparedBatch:
    """Turn one fetch into a PreparedBatch; ``versions`` is updated with what is accepted.

    Most records belong to symbols outside the interest, so they are handled in bulk (list
    comprehensions over the keys); only records of interest, and keys never seen before, are
    looked at one by one.
    """
    out = PreparedBatch()
    wanted = keys.wanted
    for partition, chunk in chunks.items():
        records: Sequence[KafkaRecord] = chunk.records
        last = chunk.last
        progress = out.progress[partition] = PartitionProgress(
            last.offset,
            last.timestamp,
            generation=chunk.generation,
            next=chunk.next,
            records=len(records) + (chunk.marker is not None),
        )
        marker = chunk.marker
        out.rollovers += marker is not None
        if marker is not None and chunk.marker_error is not None:
            out.rejected.append(
                Rejected(
                    partition,
                    marker.offset,
                    marker.key,
                    marker.value,
                    chunk.marker_error,
                    chunk.topic,
                )
            )
        if not records:
            continue
        out.received += len(records)
        mine = [r for r in records if r.key in wanted]
        others = len(records) - len(mine)
        if others:
            for record in keys.unseen(records):
                reason = keys.reason_if_bad(record.key)
                if reason is not None:
                    others -= 1
                    out.rejected.append(
                        Rejected(
                            partition, record.offset, record.key, record.value, reason, chunk.topic
                        )
                    )
            out.filtered += others
        for record in mine:
            _apply_record(out, chunk, record, progress, versions)
    if len(out.rejected) > 1:
        out.rejected.sort(key=lambda r: (r.partition, r.offset))
    return out


def _apply_record(
    out: PreparedBatch,
    chunk: Chunk,
    record: KafkaRecord,
    progress: PartitionProgress,
    versions: dict[str, Version],
) -> None:
    key = record.key
    try:
        quote = decode_quote(record.value or b"")
    except SchemaError as exc:
        out.rejected.append(
            Rejected(chunk.partition, record.offset, key, record.value, str(exc), chunk.topic)
        )
        return
    if key is None or quote.symbol.encode("ascii") != key:
        reason = f"key {key!r} does not match symbol {quote.symbol!r}"
        out.rejected.append(
            Rejected(chunk.partition, record.offset, key, record.value, reason, chunk.topic)
        )
        return
    version = (quote.epoch, quote.seq)
    cached = versions.get(quote.symbol)
    if cached is not None and version <= cached:
        out.stale += 1  # a duplicate, or older than what a snapshot gave us
        return
    if cached is not None and quote.epoch == cached[0] and quote.seq > cached[1] + 1:
        out.gaps.add(quote.symbol)
    versions[quote.symbol] = version
    if quote.symbol in out.quotes:
        out.conflated += 1
    out.quotes[quote.symbol] = (quote, record.value or b"")
    progress.last_quote_ts_ns = quote.ts_ns
