"""The rollover marker: the last record of a partition of one market-data generation.

On a broker that keeps everything (the embedded one), ``md.quotes`` and ``md.trades`` are
written as generations (``common.generations``). The publisher ends every partition of a
generation with one ``rollover`` record naming the next generation; a reader of that partition
switches to the same partition of the next generation, from offset 0, exactly there. Nothing is
ever written after a marker.

The record key is :data:`ROLLOVER_KEY`, which can never be a symbol (symbols start with
``[A-Z0-9]``), so a reader recognises a marker by its key alone, before it filters or decodes
anything. A marker whose value cannot be read still ends the partition; its next generation is
then the one after it (generations are numbered consecutively).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from common.errors import ValidationError
from common.schema.codec import SCHEMA_VERSION, pack
from common.schema.fields import get_int, get_str

ROLLOVER_TYPE = "rollover"
# The key of every marker: starts with "_", which no symbol can.
ROLLOVER_KEY = b"__rollover__"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollover:
    TYPE: ClassVar[str] = ROLLOVER_TYPE

    topic: str  # the base name: md.quotes or md.trades (with the deployment's prefix)
    generation: int  # the generation this marker ends
    next_generation: int  # where the partition continues, from offset 0
    next_topic: str  # that generation's topic name (common.generations.naming)
    partition: int
    epoch: int  # of the publisher that wrote the marker
    ts_ns: int

    def __post_init__(self) -> None:
        if self.next_generation <= self.generation:
            raise ValidationError(
                f"rollover from generation {self.generation} must name a later one, "
                f"not {self.next_generation}"
            )
        for name in ("generation", "partition", "epoch"):
            if getattr(self, name) < 0:
                raise ValidationError(f"field {name!r} must be >= 0")
        if self.ts_ns <= 0:
            raise ValidationError("field 'ts_ns' must be positive")

    def encode(self) -> bytes:
        return pack(
            {
                "v": SCHEMA_VERSION,
                "type": self.TYPE,
                "topic": self.topic,
                "generation": self.generation,
                "next_generation": self.next_generation,
                "next_topic": self.next_topic,
                "partition": self.partition,
                "epoch": self.epoch,
                "ts_ns": self.ts_ns,
            }
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Rollover:
        return cls(
            topic=get_str(raw, "topic", max_len=249),
            generation=get_int(raw, "generation"),
            next_generation=get_int(raw, "next_generation", minimum=1),
            next_topic=get_str(raw, "next_topic", max_len=249),
            partition=get_int(raw, "partition"),
            epoch=get_int(raw, "epoch"),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )
