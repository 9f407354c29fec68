"""Symbol -> partition, exactly as Kafka's default partitioner places a keyed record.

Every service computes partitions itself (the publisher to send straight to a partition, the
caches to assign only the partitions that hold their symbols), so this must agree bit for bit
with the Java client's ``Utils.murmur2`` + ``toPositive(hash) % n``; librdkafka agrees when set to
``partitioner=murmur2_random``. The unit tests pin it to values produced by the Java client.
"""

from __future__ import annotations

from collections.abc import Iterable

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as implemented by Kafka's Java client, as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner chooses for ``key`` among ``partitions``."""
    if partitions <= 0:
        raise ValueError(f"partition count must be positive, got {partitions}")
    # Java's toPositive() masks the sign bit rather than taking abs().
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(symbol: str, partitions: int) -> int:
    """The partition holding ``symbol`` (records are keyed by the symbol's ASCII bytes)."""
    return partition_for_key(symbol.encode("ascii"), partitions)


def partitions_for(symbols: Iterable[str], partitions: int) -> dict[int, set[str]]:
    """Group ``symbols`` by the partition that holds each one."""
    out: dict[int, set[str]] = {}
    for symbol in symbols:
        out.setdefault(partition_for(symbol, partitions), set()).add(symbol)
    return out
