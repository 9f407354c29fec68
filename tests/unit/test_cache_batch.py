"""common.cache.batch: one fetch -> filter by key, decode, drop stale, conflate, dead-letter.

Pure logic, so records are a tiny frozen dataclass standing in for aiokafka's ConsumerRecord.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import common.cache.batch as batch_module
from common.cache.batch import (
    KeyFilter,
    PartitionProgress,
    PreparedBatch,
    Rejected,
    Version,
    prepare,
)
from common.generations.position import Position
from common.generations.rollover import KafkaRecord, cut
from common.schema import ROLLOVER_KEY, Quote, Rollover, Trade, decode_quote, quote_wire

TS0 = 1_700_000_000_000_000_000


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def make_quote(symbol: str, seq: int, *, epoch: int = 1, ts_ns: int | None = None) -> Quote:
    return Quote(
        symbol=symbol,
        epoch=epoch,
        seq=seq,
        ts_ns=TS0 + seq if ts_ns is None else ts_ns,
        bid=100.0,
        ask=100.5,
        bid_size=200,
        ask_size=300,
    )


def rec(offset: int, quote: Quote, *, timestamp: int | None = None) -> Record:
    """A well-formed record: key = the quote's symbol."""
    return Record(
        offset=offset,
        timestamp=1_700_000_000_000 + offset if timestamp is None else timestamp,
        key=quote.symbol.encode("ascii"),
        value=quote.encode(),
    )


def run(
    records: dict[int, list[Record]],
    interest: tuple[str, ...] = ("AAPL", "MSFT"),
    versions: dict[str, Version] | None = None,
    *,
    generation: int = 3,
) -> PreparedBatch:
    chunks = {
        p: cut(f"md.quotes.g{generation}", p, generation, rs) for p, rs in records.items() if rs
    }
    return prepare(chunks, KeyFilter(interest), {} if versions is None else versions)


def assert_counts_add_up(out: PreparedBatch) -> None:
    c = out.counts()
    assert c["received"] == (
        c["filtered"] + c["dead_letters"] + c["stale"] + c["applied"] + c["conflated"]
    )


def test_record_stand_in_satisfies_the_protocol() -> None:
    record: KafkaRecord = Record(offset=1, timestamp=2, key=b"A", value=b"")
    assert record.offset == 1


# --- the plain path ---------------------------------------------------------------------------


def test_wanted_quote_is_applied_with_its_original_bytes() -> None:
    q = make_quote("AAPL", 1)
    record = rec(7, q)
    versions: dict[str, Version] = {}
    out = run({0: [record]}, versions=versions)
    assert out.quotes == {"AAPL": (q, record.value)}
    # The bytes written to Redis are the record's own, not a re-encoding.
    assert out.quotes["AAPL"][1] is record.value
    assert versions == {"AAPL": (1, 1)}
    assert out.progress == {
        0: PartitionProgress(
            last_offset=7,
            kafka_ts_ms=record.timestamp,
            last_quote_ts_ns=q.ts_ns,
            generation=3,
            next=Position(3, 8),
            records=1,
        )
    }
    assert out.rejected == []
    assert out.gaps == set()
    assert out.counts() == {
        "received": 1,
        "filtered": 0,
        "applied": 1,
        "conflated": 0,
        "stale": 0,
        "gaps": 0,
        "dead_letters": 0,
        "rollovers": 0,
    }


def test_empty_fetch_gives_an_empty_batch() -> None:
    versions: dict[str, Version] = {"AAPL": (1, 3)}
    out = run({0: [], 5: []}, versions=versions)
    assert out.quotes == {}
    assert out.progress == {}  # no record, no progress to report
    assert out.received == 0
    assert versions == {"AAPL": (1, 3)}


# --- filtering --------------------------------------------------------------------------------


def test_symbol_outside_interest_is_filtered_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []

    def spy(data: bytes) -> Quote:
        decoded.append(data)
        return decode_quote(data)

    monkeypatch.setattr(batch_module, "decode_quote", spy)
    garbage = b"\xc1 this is not msgpack at all"
    wanted = make_quote("AAPL", 1)
    records = [
        Record(offset=0, timestamp=1, key=b"IBM", value=garbage),
        rec(1, make_quote("MSFT", 1)),
        rec(2, wanted),
        Record(offset=3, timestamp=4, key=b"BRK.B", value=None),
    ]
    versions: dict[str, Version] = {}
    out = run({0: records}, interest=("AAPL",), versions=versions)
    # Garbage under a well-formed key of another symbol is filtered, not dead-lettered.
    assert out.rejected == []
    assert out.filtered == 3
    assert set(out.quotes) == {"AAPL"}
    assert versions == {"AAPL": (1, 1)}
    # Only the record of interest was decoded.
    assert decoded == [wanted.encode()]
    assert_counts_add_up(out)


def test_filtered_symbol_stays_filtered_when_seen_again() -> None:
    keys = KeyFilter(("AAPL",))
    first = prepare({0: cut("t", 0, 0, [Record(0, 1, b"IBM", b"junk")])}, keys, {})
    second = prepare({0: cut("t", 0, 0, [Record(1, 2, b"IBM", b"junk")])}, keys, {})
    assert first.filtered == second.filtered == 1
    assert first.rejected == second.rejected == []


# --- dead letters -----------------------------------------------------------------------------


def _packed(**changes: Any) -> bytes:
    """A quote's wire map with ``changes``, packed without Quote's own validation."""
    fields = quote_wire("AAPL", 1, 1, TS0, 100.0, 100.5, 200, 300)
    fields.update(changes)
    out: bytes = msgpack.packb(fields, use_bin_type=True)
    return out


_TRADE = Trade(symbol="AAPL", epoch=1, seq=1, ts_ns=TS0, price=100.0, size=100, side="B").encode()
_GOOD = make_quote("AAPL", 1).encode()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        pytest.param(b"AAPL", b"\xc1\xc1 garbage", "msgpack", id="garbage"),
        pytest.param(b"AAPL", b"\x01\x02", "msgpack", id="not-a-map"),
        pytest.param(b"AAPL", None, "msgpack", id="no-value"),
        pytest.param(b"AAPL", _packed(v=2), "unsupported schema version 2", id="version-2"),
        pytest.param(b"AAPL", _packed(bid=101.0, ask=100.0), "crossed", id="crossed"),
        pytest.param(b"AAPL", _packed(bid=-1.0), "'bid' must be positive", id="negative-bid"),
        pytest.param(b"AAPL", _packed(seq=True), "'seq' must be an integer", id="bool-seq"),
        pytest.param(b"AAPL", _TRADE, "expected a Quote", id="trade-on-quotes"),
        pytest.param(b"bad sym!", _GOOD, "not a symbol", id="key-with-space"),
        pytest.param(b"aapl", _GOOD, "not a symbol", id="key-lower-case"),
        pytest.param(b"A" * 17, _GOOD, "not a symbol", id="key-too-long"),
        pytest.param(b"", _GOOD, "not a symbol", id="key-empty"),
        pytest.param(b"\xff", _GOOD, "not a symbol", id="key-not-ascii"),
        pytest.param(None, _GOOD, "no key", id="key-none"),
        pytest.param(b"MSFT", _GOOD, "does not match symbol 'AAPL'", id="key-other-symbol"),
    ],
)
def test_bad_record_is_rejected_and_the_batch_goes_on(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    good = make_quote("MSFT", 4)
    records = [Record(offset=17, timestamp=99, key=key, value=value), rec(18, good)]
    versions: dict[str, Version] = {"AAPL": (0, 9)}
    out = run({3: records}, versions=versions)
    assert len(out.rejected) == 1
    bad = out.rejected[0]
    assert (bad.partition, bad.offset, bad.key, bad.value) == (3, 17, key, value)
    assert reason in bad.reason
    assert "\n" not in bad.reason
    # Nothing of the bad record is applied; the good one after it is.
    assert set(out.quotes) == {"MSFT"}
    assert versions == {"AAPL": (0, 9), "MSFT": (1, 4)}
    assert out.filtered == out.stale == 0
    assert out.progress[3].last_offset == 18
    assert_counts_add_up(out)


def test_rejected_entry_keeps_the_original_bytes() -> None:
    value = _packed(bid=101.0, ask=100.0)
    out = run({2: [Record(offset=5, timestamp=6, key=b"AAPL", value=value)]})
    assert out.rejected == [Rejected(2, 5, b"AAPL", value, out.rejected[0].reason, "md.quotes.g3")]
    assert out.rejected[0].value is value
    assert out.progress[2] == PartitionProgress(5, 6, None, 3, Position(3, 6), 1)


def test_bad_key_outside_interest_is_rejected_not_filtered() -> None:
    out = run({0: [Record(0, 1, b"not/OK ", b"x"), Record(1, 2, b"OK/FINE", b"x")]})
    assert [r.offset for r in out.rejected] == [0]
    assert out.filtered == 1


# --- versions: stale, restarts, gaps ----------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "seq"),
    [(1, 5), (1, 4), (1, 0), (0, 99)],
    ids=["duplicate", "older-seq", "seq-0", "older-epoch"],
)
def test_quote_not_newer_than_cached_is_stale(epoch: int, seq: int) -> None:
    versions: dict[str, Version] = {"AAPL": (1, 5)}
    out = run({0: [rec(3, make_quote("AAPL", seq, epoch=epoch))]}, versions=versions)
    assert out.stale == 1
    assert out.quotes == {}
    assert out.gaps == set()
    assert versions == {"AAPL": (1, 5)}
    # The offset still advances; no quote time is reported for it.
    assert out.progress[0].last_offset == 3
    assert out.progress[0].last_quote_ts_ns is None
    assert_counts_add_up(out)


def test_newer_epoch_with_lower_seq_is_applied() -> None:
    """A restarted publisher starts its sequences again; its epoch says it is newer."""
    versions: dict[str, Version] = {"AAPL": (1, 500)}
    q = make_quote("AAPL", 1, epoch=2)
    out = run({0: [rec(0, q)]}, versions=versions)
    assert out.quotes["AAPL"][0] == q
    assert out.stale == 0
    assert out.gaps == set()  # a new epoch is not a gap
    assert versions == {"AAPL": (2, 1)}


@pytest.mark.parametrize(
    ("cached", "epoch", "seq", "gap"),
    [
        ((1, 5), 1, 8, True),
        ((1, 5), 1, 7, True),
        ((1, 5), 1, 6, False),
        ((1, 5), 2, 8, False),
        (None, 1, 8, False),
    ],
    ids=["jump-3", "jump-2", "next", "new-epoch", "first-seen"],
)
def test_seq_jump_within_an_epoch_is_a_gap_and_still_applied(
    cached: Version | None, epoch: int, seq: int, gap: bool
) -> None:
    versions: dict[str, Version] = {} if cached is None else {"AAPL": cached}
    out = run({0: [rec(0, make_quote("AAPL", seq, epoch=epoch))]}, versions=versions)
    assert out.gaps == ({"AAPL"} if gap else set())
    assert out.counts()["gaps"] == int(gap)
    assert out.quotes["AAPL"][0].seq == seq
    assert versions["AAPL"] == (epoch, seq)


def test_gap_inside_one_batch_is_found() -> None:
    versions: dict[str, Version] = {"AAPL": (1, 5), "MSFT": (1, 1)}
    records = [
        rec(0, make_quote("AAPL", 6)),
        rec(1, make_quote("AAPL", 9)),
        rec(2, make_quote("MSFT", 2)),
        rec(3, make_quote("MSFT", 3)),
    ]
    out = run({0: records}, versions=versions)
    assert out.gaps == {"AAPL"}
    assert out.quotes["AAPL"][0].seq == 9
    assert out.conflated == 2


# --- conflation -------------------------------------------------------------------------------


def test_only_the_newest_quote_per_symbol_is_kept() -> None:
    aapl = [make_quote("AAPL", s) for s in (1, 2, 3, 4)]
    msft = [make_quote("MSFT", s) for s in (10, 11)]
    records = [
        rec(0, aapl[0]),
        rec(1, msft[0]),
        rec(2, aapl[1]),
        rec(3, aapl[2]),
        rec(4, msft[1]),
        rec(5, aapl[3]),
    ]
    out = run({0: records})
    assert out.quotes == {"AAPL": (aapl[3], aapl[3].encode()), "MSFT": (msft[1], msft[1].encode())}
    assert out.conflated == 4
    assert out.counts()["applied"] == 2
    assert out.stale == 0
    assert_counts_add_up(out)


def test_older_quote_after_a_newer_one_in_the_batch_is_stale() -> None:
    records = [rec(0, make_quote("AAPL", 3)), rec(1, make_quote("AAPL", 2))]
    versions: dict[str, Version] = {"AAPL": (1, 1)}
    out = run({0: records}, versions=versions)
    assert out.quotes["AAPL"][0].seq == 3
    assert out.stale == 1
    assert out.conflated == 0
    assert versions == {"AAPL": (1, 3)}
    # The partition's quote time is that of the applied quote, not of the stale one after it.
    assert out.progress[0].last_quote_ts_ns == TS0 + 3


def test_versions_are_updated_in_place() -> None:
    versions: dict[str, Version] = {"AAPL": (1, 1), "IBM": (3, 3)}
    same = versions
    run(
        {0: [rec(0, make_quote("AAPL", 2))], 1: [rec(0, make_quote("MSFT", 7, epoch=2))]},
        versions=versions,
    )
    assert same is versions
    # Updated, added, and left alone (IBM is not in the interest and had no record).
    assert versions == {"AAPL": (1, 2), "MSFT": (2, 7), "IBM": (3, 3)}


# --- progress and counts ----------------------------------------------------------------------


def test_progress_per_partition() -> None:
    aapl = make_quote("AAPL", 1, ts_ns=TS0 + 111)
    msft = make_quote("MSFT", 1, ts_ns=TS0 + 222)
    records = {
        # Applied, then filtered, then rejected: the offset is the last record's.
        0: [
            rec(10, aapl, timestamp=1000),
            Record(11, 1001, b"IBM", b"x"),
            Record(12, 1002, None, b"x"),
        ],
        # Only filtered records: progress, but no quote time.
        1: [Record(5, 2000, b"IBM", b"x"), Record(6, 2001, b"ORCL", b"x")],
        # Nothing fetched: no entry at all.
        2: [],
        # Applied, then stale: the quote time stays the applied one's.
        3: [rec(40, msft, timestamp=3000), rec(41, make_quote("MSFT", 1, ts_ns=TS0 + 999))],
    }
    out = run(records)
    assert out.progress == {
        0: PartitionProgress(12, 1002, TS0 + 111, 3, Position(3, 13), 3),
        1: PartitionProgress(6, 2001, None, 3, Position(3, 7), 2),
        3: PartitionProgress(41, 1_700_000_000_041, TS0 + 222, 3, Position(3, 42), 2),
    }


def test_progress_quote_time_is_the_last_applied_of_the_partition() -> None:
    records = [
        rec(0, make_quote("AAPL", 1, ts_ns=TS0 + 5)),
        rec(1, make_quote("MSFT", 1, ts_ns=TS0 + 3)),  # older clock, applied later
    ]
    out = run({0: records})
    assert out.progress[0].last_quote_ts_ns == TS0 + 3


def test_counts_of_a_mixed_batch() -> None:
    versions: dict[str, Version] = {"AAPL": (1, 10)}
    records = {
        0: [
            rec(0, make_quote("AAPL", 9)),  # stale
            rec(1, make_quote("AAPL", 11)),  # conflated by the next
            rec(2, make_quote("AAPL", 13)),  # applied, a gap (11 -> 13)
            Record(3, 1, b"IBM", b"junk"),  # filtered
            Record(4, 1, b"AAPL", b"junk"),  # rejected
        ],
        1: [
            rec(0, make_quote("MSFT", 1)),  # applied
            Record(1, 1, b"\xff", b"junk"),  # rejected
            Record(2, 1, b"GOOG", b"junk"),  # filtered
        ],
    }
    out = run(records, versions=versions)
    assert out.counts() == {
        "received": 8,
        "filtered": 2,
        "applied": 2,
        "conflated": 1,
        "stale": 1,
        "gaps": 1,
        "dead_letters": 2,
        "rollovers": 0,
    }
    assert_counts_add_up(out)
    assert sorted((r.partition, r.offset) for r in out.rejected) == [(0, 4), (1, 1)]


# --- KeyFilter --------------------------------------------------------------------------------


def test_key_filter_reasons() -> None:
    keys = KeyFilter(("AAPL",))
    assert keys.wanted == {b"AAPL"}
    assert keys.reason_if_bad(b"AAPL") is None
    assert keys.reason_if_bad(b"EUR/USD") is None
    assert keys.reason_if_bad(None) == "record has no key"
    reason = keys.reason_if_bad(b"x" * 100)
    assert reason is not None
    assert "not a symbol" in reason
    assert len(reason) < 200  # the key is quoted shortened, not in full


# --- property: the newest version wins --------------------------------------------------------

_SYMBOLS = ("AAPL", "MSFT", "IBM")
_PARTITION = {"AAPL": 0, "MSFT": 1, "IBM": 0}

_versions = st.tuples(st.integers(0, 3), st.integers(0, 12))


@given(
    items=st.lists(st.tuples(st.sampled_from(_SYMBOLS), _versions), max_size=40),
    cached=st.dictionaries(st.sampled_from(_SYMBOLS), _versions),
)
def test_kept_quote_is_the_newest_above_the_cached_version(
    items: list[tuple[str, Version]], cached: dict[str, Version]
) -> None:
    records: dict[int, list[Record]] = {0: [], 1: []}
    for i, (symbol, (epoch, seq)) in enumerate(items):
        # ts_ns tells the records apart when two carry the same version.
        quote = make_quote(symbol, seq, epoch=epoch, ts_ns=TS0 + i)
        part = records[_PARTITION[symbol]]
        part.append(rec(len(part), quote))
    versions = dict(cached)
    out = run(records, interest=_SYMBOLS, versions=versions)

    for symbol in _SYMBOLS:
        floor = cached.get(symbol)
        newer = [
            (v, i) for i, (s, v) in enumerate(items) if s == symbol and (floor is None or v > floor)
        ]
        if not newer:
            assert symbol not in out.quotes
            assert versions.get(symbol) == floor
            continue
        best = max(v for v, _ in newer)
        first_best = min(i for v, i in newer if v == best)  # a later duplicate is stale
        kept, raw = out.quotes[symbol]
        assert (kept.epoch, kept.seq) == best
        assert kept.ts_ns == TS0 + first_best
        assert raw == kept.encode()
        assert versions[symbol] == best
    assert out.received == len(items)
    assert out.rejected == []
    assert out.filtered == 0
    assert_counts_add_up(out)


# --- rollover markers ------------------------------------------------------------------------


def marker(offset: int, generation: int = 3, *, value: bytes | None = None) -> Record:
    encoded = Rollover(
        topic="md.quotes",
        generation=generation,
        next_generation=generation + 1,
        next_topic=f"md.quotes.g{generation + 1}",
        partition=0,
        epoch=1,
        ts_ns=TS0,
    ).encode()
    return Record(
        offset, 1_700_000_000_000 + offset, ROLLOVER_KEY, encoded if value is None else value
    )


def test_a_marker_ends_the_partition_and_moves_it_to_the_next_generation() -> None:
    q1, q2 = make_quote("AAPL", 1), make_quote("AAPL", 2)
    out = run({0: [rec(10, q1), rec(11, q2), marker(12)]})
    progress = out.progress[0]
    assert progress.last_offset == 12
    assert progress.generation == 3
    assert progress.next == Position(4, 0)
    assert progress.records == 3  # the two quotes and the marker
    assert out.quotes["AAPL"][0] == q2
    # Recognised by its key: never dead-lettered as "not a symbol", never counted as received.
    assert out.rejected == []
    assert out.received == 2
    assert_counts_add_up(out)


def test_a_fetch_holding_only_the_marker_still_moves_the_partition_on() -> None:
    out = run({0: [marker(40)]})
    assert out.progress[0].next == Position(4, 0)
    assert out.progress[0].last_offset == 40
    assert out.counts()["received"] == 0


def test_records_after_a_marker_are_never_read() -> None:
    late = make_quote("AAPL", 9)
    out = run({0: [rec(1, make_quote("AAPL", 1)), marker(2), rec(3, late)]})
    assert out.quotes["AAPL"][0].seq == 1
    assert out.progress[0].next == Position(4, 0)


def test_an_unreadable_marker_is_dead_lettered_and_still_ends_the_generation() -> None:
    out = run({0: [rec(1, make_quote("AAPL", 1)), marker(2, value=b"\xc1 junk")]})
    assert out.progress[0].next == Position(4, 0)
    [letter] = out.rejected
    assert (letter.offset, letter.key, letter.topic) == (2, ROLLOVER_KEY, "md.quotes.g3")
    assert "unreadable rollover marker" in letter.reason


def test_rejected_records_name_the_generation_topic_they_were_in() -> None:
    out = run({0: [Record(5, 1, b"bad key!", b"x")]}, generation=7)
    assert [r.topic for r in out.rejected] == ["md.quotes.g7"]
