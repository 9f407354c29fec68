"""Where a reader of one partition stands, across generations, and how far behind it is (no I/O).

A position is (generation, offset): the next record to read is at ``offset`` in that
generation's topic. Positions order as tuples: every record of generation N comes before any of
N + 1. Crossing a rollover marker at offset m of generation N moves a reader from (N, m) to
(N + 1, 0); nothing is skipped, nothing read twice.

Offset lag across a rollover is the rest of the reader's generation plus every later one, so it
never goes negative and never jumps when the publisher rolls (the marker itself counts as one
record, as it is one the reader has not moved past).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Position:
    generation: int
    offset: int  # the next offset to read in that generation

    @property
    def last_read(self) -> int:
        """Offset of the last record read in this generation; -1 when none yet."""
        return self.offset - 1


def offset_lag(position: Position, ends: Mapping[int, int]) -> int:
    """Records of one partition not read yet from ``position``.

    ``ends``: generation -> high watermark of the partition in that generation, for the
    generations that exist (a deleted one counts nothing: its records cannot be read any more).
    """
    lag = 0
    for generation, end in ends.items():
        if generation == position.generation:
            lag += max(0, end - position.offset)
        elif generation > position.generation:
            lag += end
    return lag


def partition_ends(marks: Mapping[tuple[int, int], int], partition: int) -> dict[int, int]:
    """One partition's high watermark per generation, from (generation, partition) -> hw."""
    return {gen: high for (gen, part), high in marks.items() if part == partition}
