"""One fetched batch -> what to write: filter by key, decode, drop stale, conflate, dead-letter.

Pure logic, no I/O: the consumer hands it records and the per-symbol versions it has cached;
it returns the newest quote per symbol, the per-partition progress, the records to dead-letter
and the counts. Filtering happens on the record key, before any value is decoded: records of
symbols outside the interest cost one set lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from common.errors import SchemaError
from common.schema import Quote, check_symbol, decode_quote

Version = tuple[int, int]  # (publisher epoch, seq)


class KafkaRecord(Protocol):
    """The part of aiokafka's ConsumerRecord this module reads."""

    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class Rejected:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass(slots=True)
class PartitionProgress:
    last_offset: int
    kafka_ts_ms: int
    last_quote_ts_ns: int | None = None


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

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "filtered": self.filtered,
            "applied": len(self.quotes),
            "conflated": self.conflated,
            "stale": self.stale,
            "gaps": len(self.gaps),
            "dead_letters": len(self.rejected),
        }


class KeyFilter:
    """Which record keys are of interest, and which keys are not symbols at all."""

    def __init__(self, interest: Iterable[str]) -> None:
        self.wanted = {s.encode("ascii") for s in interest}
        self._valid: set[bytes] = set(self.wanted)

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
    partition_records: Mapping[int, Iterable[KafkaRecord]],
    keys: KeyFilter,
    versions: dict[str, Version],
) -> PreparedBatch:
    """Turn one fetch into a PreparedBatch; ``versions`` is updated with what is accepted."""
    out = PreparedBatch()
    for partition, records in partition_records.items():
        progress: PartitionProgress | None = None
        for record in records:
            out.received += 1
            if progress is None:
                progress = out.progress[partition] = PartitionProgress(
                    record.offset, record.timestamp
                )
            progress.last_offset = record.offset
            progress.kafka_ts_ms = record.timestamp
            key = record.key
            if key not in keys.wanted:
                reason = keys.reason_if_bad(key)
                if reason is None:
                    out.filtered += 1
                else:
                    out.rejected.append(
                        Rejected(partition, record.offset, key, record.value, reason)
                    )
                continue
            try:
                quote = decode_quote(record.value or b"")
            except SchemaError as exc:
                out.rejected.append(Rejected(partition, record.offset, key, record.value, str(exc)))
                continue
            if quote.symbol.encode("ascii") != key:
                reason = f"key {key!r} does not match symbol {quote.symbol!r}"
                out.rejected.append(Rejected(partition, record.offset, key, record.value, reason))
                continue
            version = (quote.epoch, quote.seq)
            cached = versions.get(quote.symbol)
            if cached is not None and version <= cached:
                out.stale += 1  # a duplicate, or older than what a snapshot gave us
                continue
            if cached is not None and quote.epoch == cached[0] and quote.seq > cached[1] + 1:
                out.gaps.add(quote.symbol)
            versions[quote.symbol] = version
            if quote.symbol in out.quotes:
                out.conflated += 1
            out.quotes[quote.symbol] = (quote, record.value or b"")
            progress.last_quote_ts_ns = quote.ts_ns
    return out
