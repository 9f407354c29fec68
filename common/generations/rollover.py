"""Finding and reading rollover markers in fetched records, and cutting a fetch at one (no I/O).

A marker is recognised by its key (``common.schema.ROLLOVER_KEY``), before anything is decoded
or filtered. Its value names the next generation; one that cannot be read still ends the
partition, and the reader goes on to the next generation number (generations are consecutive).
Records after a marker are never read (the publisher writes none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import SchemaError
from common.generations.position import Position
from common.schema import ROLLOVER_KEY, Rollover, decode_as


class KafkaRecord(Protocol):
    """The part of aiokafka's ConsumerRecord that market-data readers look at."""

    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


# Why a record is not authentic (None: it is): how a reader checks a marker before obeying it.
RecordCheck = Callable[[KafkaRecord], str | None]


def find_marker(
    records: Sequence[KafkaRecord], check: RecordCheck | None = None
) -> tuple[int | None, list[tuple[Any, str]]]:
    """Index of the first authentic rollover marker in ``records`` (in offset order), or None;
    and the markers before it that ``check`` refused, with why (a forged marker could send a
    reader to a topic an attacker made, or past the rest of its generation: it is not obeyed)."""
    forged: list[tuple[Any, str]] = []
    for index, record in enumerate(records):
        if record.key == ROLLOVER_KEY:
            reason = check(record) if check is not None else None
            if reason is None:
                return index, forged
            forged.append((record, f"rollover marker refused: {reason}"))
    return None, forged


def read_marker(value: bytes | None, generation: int) -> tuple[int, str | None]:
    """The generation after a marker of ``generation``, and why the value was bad (or None)."""
    try:
        marker = decode_as(value or b"", Rollover)
    except SchemaError as exc:
        return generation + 1, f"unreadable rollover marker: {exc}"
    if marker.generation != generation:
        return generation + 1, (
            f"rollover marker of generation {marker.generation} found in generation {generation}"
        )
    return marker.next_generation, None


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one fetch read of one partition, in offset order, up to its marker."""

    topic: str  # the generation's topic the records are from
    partition: int
    generation: int
    records: Sequence[Any]  # KafkaRecords; the marker is not among them
    next: Position  # where the partition continues
    marker: Any | None = None  # the rollover record that ended the generation here, if any
    marker_error: str | None = None  # why the marker's value could not be read (it still counts)
    # Records with a marker's key that are not authentic, with why: dead-lettered, not obeyed.
    forged: Sequence[tuple[Any, str]] = ()

    @property
    def last(self) -> Any:
        """The last record read, the marker included."""
        return self.marker if self.marker is not None else self.records[-1]


def cut(
    topic: str,
    partition: int,
    generation: int,
    records: Sequence[Any],
    check: RecordCheck | None = None,
) -> Chunk:
    """``records`` of one partition (non-empty, in offset order) as a Chunk, cut at the first
    marker that passes ``check``; refused markers are taken out and listed in ``forged``."""
    at, forged = find_marker(records, check)
    if at is None:
        following = Position(generation, records[-1].offset + 1)
        return Chunk(
            topic, partition, generation, _without(records, forged), following, forged=forged
        )
    marker = records[at]
    after, error = read_marker(marker.value, generation)
    kept = _without(records[:at], forged)
    return Chunk(topic, partition, generation, kept, Position(after, 0), marker, error, forged)


def _without(records: Sequence[Any], forged: list[tuple[Any, str]]) -> Sequence[Any]:
    if not forged:
        return records
    out = {id(record) for record, _ in forged}
    return [r for r in records if id(r) not in out]
