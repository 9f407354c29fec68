"""common.partitioner must place keys exactly where Kafka's Java client (and aiokafka) do."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from common.partitioner import murmur2, partition_for, partition_for_key, partitions_for
from feed_publisher.universe import universe


# Partitions chosen by Kafka's Java client among 1000 partitions (the values kafka-python and
# aiokafka pin their own partitioner to).
@pytest.mark.parametrize(
    ("key", "partition"),
    [
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ],
)
def test_java_client_compatibility(key: bytes, partition: int) -> None:
    assert partition_for_key(key, 1000) == partition


# Raw hashes, checked against aiokafka.partitioner.murmur2 (which agrees on all of them).
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"", 275646681),
        (b"hello", 2132663229),
        (b"kafka", 3496464228),
        (b"test", 716234879),
        (b"a", 2731586172),
    ],
)
def test_murmur2_raw_values(key: bytes, expected: int) -> None:
    assert aiokafka_murmur2(key) == expected
    assert murmur2(key) == expected


@given(st.binary(max_size=64))
def test_murmur2_matches_aiokafka(key: bytes) -> None:
    value = murmur2(key)
    assert value == aiokafka_murmur2(key)
    assert 0 <= value < 2**32


@given(key=st.binary(max_size=64), count=st.integers(min_value=1, max_value=64))
def test_partition_matches_aiokafka_default_partitioner(key: bytes, count: int) -> None:
    all_partitions = list(range(count))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert partition_for_key(key, count) == expected


@given(
    symbol=st.from_regex(r"[A-Z0-9][A-Z0-9._/\-]{0,15}", fullmatch=True),
    count=st.integers(min_value=1, max_value=64),
)
def test_partition_for_symbol_uses_ascii_key(symbol: str, count: int) -> None:
    partition = partition_for(symbol, count)
    assert partition == partition_for_key(symbol.encode("ascii"), count)
    assert 0 <= partition < count


def test_sign_bit_is_masked_not_negated() -> None:
    # b"kafka" hashes above 2**31: Java's toPositive() clears the top bit, abs() would not.
    value = murmur2(b"kafka")
    assert value >= 2**31
    assert partition_for_key(b"kafka", 1000) == (value & 0x7FFFFFFF) % 1000


def test_single_partition_holds_everything() -> None:
    assert {partition_for(s, 1) for s in universe(100)} == {0}


def test_partitions_for_groups_symbols() -> None:
    symbols = universe(200)
    groups = partitions_for(symbols, 16)
    assert all(0 <= p < 16 for p in groups)
    # Every symbol is in exactly one group: the one partition_for names.
    flat = [s for group in groups.values() for s in group]
    assert sorted(flat) == sorted(symbols)
    for partition, group in groups.items():
        assert group
        assert all(partition_for(s, 16) == partition for s in group)
    # 200 symbols over 16 partitions: the hash spreads them (every partition gets some).
    assert len(groups) == 16


def test_partitions_for_ignores_duplicates_and_empty_input() -> None:
    assert partitions_for([], 8) == {}
    groups = partitions_for(["AAPL", "AAPL", "MSFT"], 8)
    assert sum(len(g) for g in groups.values()) == 2


@pytest.mark.parametrize("count", [0, -1, -16])
def test_non_positive_partition_count_raises(count: int) -> None:
    with pytest.raises(ValueError, match="partition count"):
        partition_for_key(b"AAPL", count)
    with pytest.raises(ValueError, match="partition count"):
        partition_for("AAPL", count)
    with pytest.raises(ValueError, match="partition count"):
        partitions_for(["AAPL"], count)
