"""common.generations without I/O: names, what a broker holds, positions, lag, markers."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ConfigError, DecodeError, ValidationError
from common.generations.naming import (
    Generations,
    GenerationWatch,
    HistoryMode,
    generation_topic,
    history_mode,
    parse_generation,
    require_no_generations,
    resolve_mode,
)
from common.generations.position import Position, offset_lag, partition_ends
from common.generations.rollover import cut, find_marker, read_marker
from common.schema import ROLLOVER_KEY, Rollover, SnapshotReply, check_symbol, decode
from tests.unit.test_cache_batch import Record

BASE = "t1.md.quotes"


def rollover(generation: int = 3, following: int = 4) -> Rollover:
    return Rollover(
        topic=BASE,
        generation=generation,
        next_generation=following,
        next_topic=generation_topic(BASE, following),
        partition=2,
        epoch=1_700_000_000_000,
        ts_ns=1,
    )


# --- names ------------------------------------------------------------------------------------


def test_generation_zero_is_the_plain_topic_and_the_others_are_numbered() -> None:
    assert generation_topic(BASE, 0) == BASE
    assert generation_topic(BASE, 12) == f"{BASE}.g12"
    with pytest.raises(ValueError, match="< 0"):
        generation_topic(BASE, -1)


@given(st.integers(min_value=0, max_value=10**9))
def test_names_parse_back(generation: int) -> None:
    assert parse_generation(BASE, generation_topic(BASE, generation)) == generation


@pytest.mark.parametrize(
    "name",
    [f"{BASE}.g0", f"{BASE}.g01", f"{BASE}.g", f"{BASE}.gx", f"{BASE}x", "md.quotes.g1", "x"],
)
def test_other_names_are_not_generations(name: str) -> None:
    assert parse_generation(BASE, name) is None


def test_the_prefix_is_matched_literally() -> None:
    assert parse_generation("a.b", "aXb.g1") is None


def test_what_a_broker_holds_and_the_chain_a_reader_follows() -> None:
    names = [f"{BASE}.g7", f"{BASE}.g5", BASE, f"{BASE}.g6", "t1.md.trades.g6", "other"]
    found = Generations.from_names(BASE, names)
    assert found.numbers == (0, 5, 6, 7)
    assert found.numbered
    # With numbered generations, the plain topic is not part of the chain.
    assert found.chain == (5, 6, 7)
    assert (found.oldest, found.newest) == (5, 7)
    assert 0 in found
    assert 4 not in found
    assert found.topics() == [BASE, f"{BASE}.g5", f"{BASE}.g6", f"{BASE}.g7"]


def test_without_numbered_generations_the_plain_topic_is_the_chain() -> None:
    found = Generations.from_names(BASE, [BASE])
    assert not found.numbered
    assert found.chain == (0,)
    assert found.newest == 0
    nothing = Generations.from_names(BASE, [])
    assert nothing.chain == ()
    assert nothing.newest is None


# --- the history mode -------------------------------------------------------------------------


def test_auto_means_generations_on_the_embedded_broker_only() -> None:
    assert resolve_mode("auto", "tansu_cluster") is HistoryMode.GENERATIONS
    assert resolve_mode("auto", "MkU3OEVBNTcwNTJENDM2Qk") is HistoryMode.RETENTION
    assert resolve_mode("auto", None) is HistoryMode.RETENTION
    assert resolve_mode("generations", "anything") is HistoryMode.GENERATIONS
    assert resolve_mode("retention", "tansu_cluster") is HistoryMode.RETENTION


def test_the_setting_is_checked() -> None:
    assert history_mode("auto") is None
    assert history_mode("forever") == "must be one of auto, generations, retention"


def test_retention_refuses_a_broker_that_holds_generations() -> None:
    require_no_generations(Generations.from_names(BASE, [BASE]))
    with pytest.raises(ConfigError, match=r"t1\.md\.quotes\.g3"):
        require_no_generations(Generations.from_names(BASE, [BASE, f"{BASE}.g3"]))


# --- positions and lag ------------------------------------------------------------------------


def test_positions_order_generation_first() -> None:
    assert Position(3, 10_000) < Position(4, 0)
    assert min(Position(4, 5), Position(3, 900)) == Position(3, 900)
    assert Position(4, 0).last_read == -1


def test_lag_is_the_rest_of_the_generation_plus_the_later_ones() -> None:
    ends = {3: 1000, 4: 200, 5: 7}
    assert offset_lag(Position(3, 990), ends) == 10 + 200 + 7
    assert offset_lag(Position(5, 7), ends) == 0
    # A generation deleted under the reader counts nothing; the later ones still do.
    assert offset_lag(Position(2, 50), ends) == 1207


def test_lag_never_goes_negative_and_never_jumps_at_a_roll() -> None:
    # Caught up in generation 3; the publisher rolls: the marker, then generation 4 grows.
    before = offset_lag(Position(3, 1000), {3: 1000})
    at_roll = offset_lag(Position(3, 1000), {3: 1001, 4: 0})
    after = offset_lag(Position(3, 1000), {3: 1001, 4: 30})
    crossed = offset_lag(Position(4, 0), {3: 1001, 4: 30})
    assert (before, at_roll, after, crossed) == (0, 1, 31, 30)
    # A reader ahead of a stale watermark is not behind.
    assert offset_lag(Position(4, 40), {3: 1001, 4: 30}) == 0


def test_partition_ends_picks_one_partition() -> None:
    marks = {(3, 0): 10, (3, 1): 11, (4, 0): 2}
    assert partition_ends(marks, 0) == {3: 10, 4: 2}
    assert partition_ends(marks, 1) == {3: 11}


def test_an_observer_counts_rolls_deletions_and_what_was_published() -> None:
    watch = GenerationWatch()
    watch.update({(5, 0): 100, (6, 0): 3})
    watch.update({(5, 0): 101, (6, 0): 50, (7, 0): 0})
    watch.update({(6, 0): 51, (7, 0): 9, (8, 0): 0})
    assert watch.first == 6
    assert watch.newest == 8
    assert watch.rolls == 2
    assert watch.deleted == 1
    # Each generation at the largest watermark seen of it, deleted ones included.
    assert watch.published == 101 + 51 + 9
    assert watch.published_on([0]) == watch.published
    assert watch.published_on([1]) == 0
    # Generation 5 back as an empty ghost, and gone again: still one deletion.
    watch.update({(5, 0): 0, (7, 0): 10, (8, 0): 1})
    watch.update({(7, 0): 10, (8, 0): 2})
    assert watch.deleted == 2  # 5, and 6
    assert watch.published == 101 + 51 + 10 + 2


# --- markers ----------------------------------------------------------------------------------


def test_the_rollover_record_round_trips_and_its_key_is_no_symbol() -> None:
    marker = rollover()
    assert decode(marker.encode()) == marker
    raw = msgpack.unpackb(marker.encode())
    assert raw["type"] == "rollover"
    assert raw["next_topic"] == f"{BASE}.g4"
    with pytest.raises(ValidationError):
        check_symbol(ROLLOVER_KEY.decode())


def test_a_rollover_must_name_a_later_generation() -> None:
    with pytest.raises(ValidationError, match="later"):
        rollover(3, 3)


def test_a_rollover_with_a_field_missing_does_not_decode() -> None:
    raw = msgpack.unpackb(rollover().encode())
    del raw["next_generation"]
    with pytest.raises(DecodeError, match="next_generation"):
        decode(msgpack.packb(raw))


def test_reading_a_marker_names_the_next_generation_even_when_it_is_bad() -> None:
    assert read_marker(rollover().encode(), 3) == (4, None)
    following, why = read_marker(b"\xc1", 3)
    assert following == 4
    assert why is not None
    assert "unreadable" in why
    # A marker of another generation than the one it is in: the next one all the same.
    following, why = read_marker(rollover(7, 8).encode(), 3)
    assert following == 4
    assert why is not None
    assert "generation 7" in why


def test_a_fetch_is_cut_at_its_first_marker() -> None:
    records = [
        Record(10, 1, b"AAAA", b"q"),
        Record(11, 1, ROLLOVER_KEY, rollover().encode()),
        Record(12, 1, b"AAAA", b"never read"),
    ]
    assert find_marker(records)[0] == 1
    chunk = cut(f"{BASE}.g3", 2, 3, records)
    assert [r.offset for r in chunk.records] == [10]
    assert chunk.marker is records[1]
    assert chunk.marker_error is None
    assert chunk.next == Position(4, 0)
    assert chunk.last is records[1]


def test_a_fetch_without_a_marker_moves_on_in_its_generation() -> None:
    records = [Record(10, 1, b"AAAA", b"q"), Record(11, 1, b"AAAB", b"q")]
    assert find_marker(records)[0] is None
    chunk = cut(f"{BASE}.g3", 2, 3, records)
    assert chunk.marker is None
    assert chunk.next == Position(3, 12)
    assert chunk.last is records[-1]


# --- snapshot replies -------------------------------------------------------------------------


def reply(**changes: object) -> SnapshotReply:
    fields: dict[str, object] = {
        "request_id": "r1",
        "epoch": 5,
        "part": 0,
        "parts": 1,
        "quotes": (b"q",),
        "offsets": ((0, 10), (1, 0)),
        "missing": ("AAAB",),
        "generations": ((0, 3), (1, 4)),
        **changes,
    }
    return SnapshotReply(**fields)  # type: ignore[arg-type]


def test_a_snapshot_reply_names_the_generation_of_each_offset() -> None:
    original = reply()
    assert decode(original.encode()) == original
    assert msgpack.unpackb(original.encode())["generations"] == [[0, 3], [1, 4]]


def test_a_snapshot_reply_without_generations_is_all_in_the_plain_topic() -> None:
    raw = msgpack.unpackb(reply().encode())
    del raw["generations"]
    assert decode(msgpack.packb(raw)) == reply(generations=())


@pytest.mark.parametrize("bad", [[[0]], [[0, "3"]], [[0, -1]], 7])
def test_a_snapshot_reply_with_bad_generations_is_refused(bad: object) -> None:
    raw = msgpack.unpackb(reply().encode())
    raw["generations"] = bad
    with pytest.raises((DecodeError, ValidationError)):
        decode(msgpack.packb(raw))
