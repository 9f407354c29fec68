"""common.feedsign: the signed byte string, keys and their files, verification, plausibility,
and how the cache's batch and the generation reader use them (no I/O but a key file)."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.cache.batch import KeyFilter, prepare
from common.cache.settings import CacheSettings
from common.errors import ConfigError
from common.feedsign import FeedKeys, FeedTrust, Plausibility, feed_keys, write_key_file
from common.feedsign.signing import KID_HEADER, SIG_HEADER
from common.generations.rollover import KafkaRecord, cut
from common.schema import ROLLOVER_KEY, Quote, Rollover

KEY = bytes(range(32))
KEYS = FeedKeys((KEY,))
BASE = "md.quotes"
NOW = 1_800_000_000_000_000_000
EPOCH = NOW // 1_000_000 - 60_000  # a publisher started a minute ago


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def quote(
    symbol: str, seq: int, *, epoch: int = EPOCH, ts_ns: int = NOW, ask: float = 10.5
) -> Quote:
    return Quote(
        symbol=symbol, epoch=epoch, seq=seq, ts_ns=ts_ns, bid=10.0, ask=ask, bid_size=1, ask_size=1
    )


def rec(offset: int, q: Quote, keys: FeedKeys | None = KEYS, context: str = BASE) -> Record:
    key, value = q.symbol.encode(), q.encode()
    headers = tuple(keys.signer().headers(context, key, value)) if keys else ()
    return Record(offset, 1, key, value, headers)


TRUST = FeedTrust(KEYS.verifier(), Plausibility(5.0, 1000))


def test_the_signature_is_the_documented_byte_string() -> None:
    """What the README says another language computes, byte for byte."""
    key, value = b"AAPL", b"\x81\xa1v\x01"
    message = (
        b"marketfeed.sig.v1\n"
        + struct.pack(">H", len(BASE))
        + BASE.encode()
        + struct.pack(">I", len(key))
        + key
        + value
    )
    headers = dict(KEYS.signer().headers(BASE, key, value))
    assert headers[SIG_HEADER] == hmac.new(KEY, message, hashlib.sha256).digest()
    kid = hashlib.sha256(b"marketfeed.kid\n" + KEY).hexdigest()[:8].encode()
    assert headers[KID_HEADER] == kid
    long_key = b"k" * 100  # longer than SHA-256's block: hashed first, as HMAC says
    long_headers = dict(FeedKeys((long_key,)).signer().headers(BASE, key, value))
    assert long_headers[SIG_HEADER] == hmac.new(long_key, message, hashlib.sha256).digest()


def test_verification_names_what_is_wrong() -> None:
    verifier = KEYS.verifier()
    key, value = b"AAPL", b"value"
    good = KEYS.signer().headers(BASE, key, value)
    assert verifier.reason(BASE, key, value, good) is None
    assert verifier.reason(BASE, key, value, []) == "unsigned: no mf.sig header"
    assert "bad signature" in str(verifier.reason(BASE, key, b"valuE", good))
    assert "bad signature" in str(verifier.reason(BASE, b"MSFT", value, good))
    # Signed for another topic (a snapshot reply replayed onto the quotes): refused.
    assert "bad signature" in str(verifier.reason("md.trades", key, value, good))
    other = FeedKeys((b"\x01" * 32,)).signer().headers(BASE, key, value)
    assert "unknown key" in str(verifier.reason(BASE, key, value, other))


def test_rotation_the_first_key_signs_every_key_verifies() -> None:
    old, new = b"\x02" * 32, b"\x03" * 32
    rotating = FeedKeys.parse(f"{new.hex()},{old.hex()}", source="x")
    by_old = FeedKeys((old,)).signer().headers(BASE, b"K", b"v")
    assert rotating.verifier().reason(BASE, b"K", b"v", by_old) is None
    assert rotating.signer().kid == FeedKeys((new,)).signer().kid


def test_bad_keys_are_one_line_that_never_quotes_the_key() -> None:
    with pytest.raises(ConfigError, match="hex digits") as caught:
        FeedKeys.parse("zz" * 32, source="--feed-key")
    assert "zz" not in str(caught.value)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        FeedKeys.parse("ab" * 8, source="--feed-key")
    with pytest.raises(ConfigError, match="no feed key"):
        feed_keys(CacheSettings())
    assert feed_keys(CacheSettings(insecure_unsigned_feed=True)) is None


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feed.key"
    write_key_file(path, KEYS)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert feed_keys(CacheSettings(feed_key_file=path)) == KEYS
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by group or others \(mode 0644\)"):
        feed_keys(CacheSettings(feed_key_file=path))
    with pytest.raises(ConfigError, match="cannot read it"):
        feed_keys(CacheSettings(feed_key_file=tmp_path / "missing"))


def test_plausibility() -> None:
    p = Plausibility(5.0, 1000)
    assert p.clock_reason(quote("A", 1), NOW) is None
    assert "ts_ns is 3600.0s in the future" in str(
        p.clock_reason(quote("A", 1, ts_ns=NOW + 3600 * 10**9), NOW)
    )
    assert "epoch is" in str(p.clock_reason(quote("A", 1, epoch=NOW // 10**6 + 86_400_000), NOW))
    assert p.seq_reason(quote("A", 1001), (EPOCH, 1)) is None
    assert "seq jumps by 1,001" in str(p.seq_reason(quote("A", 1002), (EPOCH, 1)))
    assert p.seq_reason(quote("A", 10**6, epoch=EPOCH + 1), (EPOCH, 1)) is None  # a restart


def test_a_forged_newest_quote_falls_back_to_the_next_newest_real_one() -> None:
    versions = {"A": (EPOCH, 1)}
    records = [
        rec(0, quote("A", 2)),
        rec(1, quote("A", 3)),
        rec(2, quote("A", 99, ask=10.01), keys=None),  # unsigned, the newest
    ]
    out = prepare(
        {0: cut(f"{BASE}.g1", 0, 1, records)},
        KeyFilter(["A"]),
        versions,
        TRUST,
        context=BASE,
        now_ns=NOW,
    )
    assert out.quotes["A"][0].seq == 3
    assert versions["A"] == (EPOCH, 3)
    assert [(r.offset, r.reason) for r in out.rejected] == [(2, "unsigned: no mf.sig header")]
    assert (out.conflated, out.stale) == (1, 0)


def test_a_forged_quote_in_the_middle_does_not_hide_the_real_ones_after_it() -> None:
    versions = {"A": (EPOCH, 1)}
    records = [
        rec(0, quote("A", 2)),
        rec(1, quote("A", 500), keys=FeedKeys((b"\x09" * 32,))),
        rec(2, quote("A", 3)),
    ]
    out = prepare(
        {0: cut(f"{BASE}.g1", 0, 1, records)},
        KeyFilter(["A"]),
        versions,
        TRUST,
        context=BASE,
        now_ns=NOW,
    )
    assert out.quotes["A"][0].seq == 3
    assert len(out.rejected) == 1


def test_a_signed_seq_jump_is_dead_lettered_and_asks_for_a_snapshot() -> None:
    versions = {"A": (EPOCH, 1)}
    out = prepare(
        {0: cut(f"{BASE}.g1", 0, 1, [rec(0, quote("A", 5000))])},
        KeyFilter(["A"]),
        versions,
        TRUST,
        context=BASE,
        now_ns=NOW,
    )
    assert out.quotes == {}
    assert versions["A"] == (EPOCH, 1)
    assert "implausible: seq jumps" in out.rejected[0].reason
    assert out.gaps == {"A"}


def test_a_forged_marker_is_dead_lettered_and_not_obeyed() -> None:
    def marker(next_generation: int) -> bytes:
        return Rollover(
            topic=BASE,
            generation=1,
            next_generation=next_generation,
            next_topic=f"{BASE}.g{next_generation}",
            partition=0,
            epoch=EPOCH,
            ts_ns=NOW,
        ).encode()

    def authentic(record: KafkaRecord) -> str | None:
        return TRUST.signature_reason(BASE, record)

    forged = Record(1, 1, ROLLOVER_KEY, marker(999))
    real_value = marker(2)
    real = Record(
        3, 1, ROLLOVER_KEY, real_value, tuple(KEYS.signer().headers(BASE, ROLLOVER_KEY, real_value))
    )
    records = [rec(0, quote("A", 2)), forged, rec(2, quote("A", 3)), real]
    chunk = cut(f"{BASE}.g1", 0, 1, records, authentic)
    assert chunk.next.generation == 2  # the real marker's, not the forged one's 999
    assert [r.offset for r in chunk.records] == [0, 2]
    out = prepare({0: chunk}, KeyFilter(["A"]), {}, TRUST, context=BASE, now_ns=NOW)
    assert [(r.offset, r.reason) for r in out.rejected] == [
        (1, "rollover marker refused: unsigned: no mf.sig header")
    ]
    assert out.quotes["A"][0].seq == 3
