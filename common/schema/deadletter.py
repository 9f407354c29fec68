"""Dead-letter records: what a service could not use, why, and where it came from.

The original bytes travel untouched, so a record can be inspected or replayed after a fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from common.errors import DecodeError
from common.schema.codec import SCHEMA_VERSION, pack
from common.schema.fields import get, get_int, get_str

DEAD_LETTER_TYPE = "dead_letter"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    TYPE: ClassVar[str] = DEAD_LETTER_TYPE

    service: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ts_ns: int

    def encode(self) -> bytes:
        return pack(
            {
                "v": SCHEMA_VERSION,
                "type": self.TYPE,
                "service": self.service,
                "reason": self.reason,
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "key": self.key,
                "value": self.value,
                "ts_ns": self.ts_ns,
            }
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> DeadLetter:
        return cls(
            service=get_str(raw, "service"),
            reason=get_str(raw, "reason", max_len=2000),
            topic=get_str(raw, "topic", max_len=249),
            partition=get_int(raw, "partition"),
            offset=get_int(raw, "offset"),
            key=_get_bytes(raw, "key"),
            value=_get_bytes(raw, "value"),
            ts_ns=get_int(raw, "ts_ns", minimum=1),
        )


def _get_bytes(raw: Mapping[str, Any], name: str) -> bytes | None:
    value = get(raw, name)
    if value is not None and not isinstance(value, bytes):
        raise DecodeError(f"dead letter {name} must be binary or nil")
    return value
