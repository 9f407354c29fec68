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
from common.feedsign.trust import FeedTrust
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
    # Of the applied quote whose time is last_quote_ts_ns (bookkeeping, not compared).
    last_quote_offset: int = field(default=-1, compare=False, repr=False)


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
    trust: FeedTrust | None = None,
    *,
    context: str = "",
    now_ns: int = 0,
) -> PreparedBatch:
    """Turn one fetch into a PreparedBatch; ``versions`` is updated with what is accepted.

    Most records belong to symbols outside the interest, so they are handled in bulk (list
    comprehensions over the keys); only records of interest, and keys never seen before, are
    looked at one by one. With ``trust``, the quote about to be applied for a symbol (the
    newest) must be signed for ``context`` (the topic's base name) and plausible at ``now_ns``;
    one that is not is dead-lettered and the next newest is tried, so no unverified record ever
    moves a symbol's version. Only winners are verified: conflated quotes cost no HMAC.
    """
    out = PreparedBatch()
    wanted = keys.wanted
    candidates: dict[str, list[_Candidate]] = {}
    for partition, chunk in chunks.items():
        records: Sequence[KafkaRecord] = chunk.records
        progress = out.progress[partition] = PartitionProgress(
            chunk.last.offset,
            chunk.last.timestamp,
            generation=chunk.generation,
            next=chunk.next,
            records=len(records) + (chunk.marker is not None) + len(chunk.forged),
        )
        marker = chunk.marker
        out.rollovers += marker is not None
        if marker is not None and chunk.marker_error is not None:
            out.rejected.append(_rejected(chunk, marker, chunk.marker_error))
        out.received += len(chunk.forged)
        out.rejected.extend(_rejected(chunk, record, reason) for record, reason in chunk.forged)
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
                    out.rejected.append(_rejected(chunk, record, reason))
            out.filtered += others
        for record in mine:
            candidate = _decode(out, chunk, record, progress)
            if candidate is not None:
                candidates.setdefault(candidate.quote.symbol, []).append(candidate)
    for symbol, found in candidates.items():
        _settle(out, symbol, found, versions, trust, context, now_ns)
    if len(out.rejected) > 1:
        out.rejected.sort(key=lambda r: (r.partition, r.offset))
    return out


@dataclass(slots=True)
class _Candidate:
    """A decoded quote of interest, in its partition's offset order."""

    quote: Quote
    version: Version
    record: KafkaRecord
    chunk: Chunk
    progress: PartitionProgress


def _rejected(chunk: Chunk, record: KafkaRecord, reason: str) -> Rejected:
    return Rejected(chunk.partition, record.offset, record.key, record.value, reason, chunk.topic)


def _decode(
    out: PreparedBatch, chunk: Chunk, record: KafkaRecord, progress: PartitionProgress
) -> _Candidate | None:
    key = record.key
    try:
        quote = decode_quote(record.value or b"")
    except SchemaError as exc:
        out.rejected.append(_rejected(chunk, record, str(exc)))
        return None
    if key is None or quote.symbol.encode("ascii") != key:
        reason = f"key {key!r} does not match symbol {quote.symbol!r}"
        out.rejected.append(_rejected(chunk, record, reason))
        return None
    return _Candidate(quote, (quote.epoch, quote.seq), record, chunk, progress)


def _chain(found: list[_Candidate], cached: Version | None) -> list[_Candidate]:
    """The candidates that are each newer than everything before them (the rest are stale:
    duplicates, or older than the cached quote); the last one is the newest."""
    chain, top = [], cached
    for candidate in found:
        if top is None or candidate.version > top:
            chain.append(candidate)
            top = candidate.version
    return chain


def _settle(
    out: PreparedBatch,
    symbol: str,
    found: list[_Candidate],
    versions: dict[str, Version],
    trust: FeedTrust | None,
    context: str,
    now_ns: int,
) -> None:
    """Pick the quote to apply for ``symbol``: the newest that passes ``trust``."""
    cached = versions.get(symbol)
    chain = _chain(found, cached)
    while chain and trust is not None:
        newest = chain[-1]
        reason, resnapshot = trust.quote_reason(
            context, newest.record, newest.quote, cached, now_ns
        )
        if reason is None:
            break
        out.rejected.append(_rejected(newest.chunk, newest.record, reason))
        if resnapshot:
            out.gaps.add(symbol)  # the publisher's signed snapshot is authoritative
        found = [c for c in found if c is not newest]
        chain = _chain(found, cached)
    out.stale += len(found) - len(chain)
    if not chain:
        return
    winner = chain[-1]
    previous = cached
    for candidate in chain:
        version = candidate.version
        if previous is not None and version[0] == previous[0] and version[1] > previous[1] + 1:
            out.gaps.add(symbol)
        previous = version
    out.conflated += len(chain) - 1
    versions[symbol] = winner.version
    out.quotes[symbol] = (winner.quote, winner.record.value or b"")
    progress = winner.progress
    if winner.record.offset > progress.last_quote_offset:
        progress.last_quote_offset = winner.record.offset
        progress.last_quote_ts_ns = winner.quote.ts_ns
