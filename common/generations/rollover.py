"""Finding and reading rollover markers in fetched records (no I/O).

A marker is recognised by its key (``common.schema.ROLLOVER_KEY``), before anything is decoded
or filtered. Its value names the next generation; one that cannot be read still ends the
partition, and the reader goes on to the next generation number (generations are consecutive).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from common.errors import SchemaError
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


def find_marker(records: Sequence[KafkaRecord]) -> int | None:
    """Index of the first rollover marker in ``records`` (in offset order), or None."""
    for index, record in enumerate(records):
        if record.key == ROLLOVER_KEY:
            return index
    return None


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
