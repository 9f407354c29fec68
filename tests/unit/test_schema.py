"""The wire format (common.schema): round trips, and every way a message can be refused."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import DecodeError, SchemaError, ValidationError
from common.schema import (
    SCHEMA_VERSION,
    SYMBOL_MAX_LEN,
    Quote,
    Trade,
    check_symbol,
    decode,
    decode_quote,
    quote_wire,
    trade_wire,
)

# --- strategies -------------------------------------------------------------------------------

symbols = st.from_regex(r"[A-Z0-9][A-Z0-9._/\-]{0,15}", fullmatch=True)
prices = st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**63 - 1)
timestamps = st.integers(min_value=1, max_value=2**63 - 1)


@st.composite
def quotes(draw: st.DrawFn) -> Quote:
    low, high = sorted((draw(prices), draw(prices)))
    return Quote(
        symbol=draw(symbols),
        epoch=draw(counts),
        seq=draw(counts),
        ts_ns=draw(timestamps),
        bid=low,
        ask=high,
        bid_size=draw(st.integers(0, 2**32)),
        ask_size=draw(st.integers(0, 2**32)),
    )


@st.composite
def trades(draw: st.DrawFn) -> Trade:
    return Trade(
        symbol=draw(symbols),
        epoch=draw(counts),
        seq=draw(counts),
        ts_ns=draw(timestamps),
        price=draw(prices),
        size=draw(st.integers(1, 2**32)),
        side=draw(st.sampled_from(["B", "S"])),
    )


# --- round trips ------------------------------------------------------------------------------


@given(quotes())
def test_quote_round_trip(quote: Quote) -> None:
    data = quote.encode()
    back = decode(data)
    assert isinstance(back, Quote)
    assert back == quote
    assert decode_quote(data) == quote
    # Re-encoding a decoded message gives the same bytes: nothing is lost or reordered.
    assert back.encode() == data


@given(trades())
def test_trade_round_trip(trade: Trade) -> None:
    data = trade.encode()
    back = decode(data)
    assert isinstance(back, Trade)
    assert back == trade
    assert back.encode() == data


@given(symbols)
def test_generated_symbols_pass_check_symbol(symbol: str) -> None:
    assert check_symbol(symbol) == symbol


def test_wire_map_has_version_and_type() -> None:
    raw = msgpack.unpackb(_quote().encode())
    assert raw["v"] == SCHEMA_VERSION
    assert raw["type"] == "quote"
    assert set(raw) == {
        "v",
        "type",
        "symbol",
        "epoch",
        "seq",
        "ts_ns",
        "bid",
        "ask",
        "bid_size",
        "ask_size",
    }
    raw = msgpack.unpackb(_trade().encode())
    assert raw["type"] == "trade"
    assert set(raw) == {"v", "type", "symbol", "epoch", "seq", "ts_ns", "price", "size", "side"}


def test_quote_mid_and_frozen() -> None:
    quote = _quote(bid=100.0, ask=100.5)
    assert quote.mid == 100.25
    with pytest.raises(dataclasses.FrozenInstanceError):
        quote.bid = 1.0  # type: ignore[misc]


# --- helpers ----------------------------------------------------------------------------------


def _quote(**changes: Any) -> Quote:
    fields: dict[str, Any] = {
        "symbol": "BRK.B",
        "epoch": 3,
        "seq": 42,
        "ts_ns": 1_700_000_000_000_000_000,
        "bid": 100.25,
        "ask": 100.5,
        "bid_size": 300,
        "ask_size": 500,
    }
    fields.update(changes)
    return Quote(**fields)


def _trade(**changes: Any) -> Trade:
    fields: dict[str, Any] = {
        "symbol": "EUR/USD",
        "epoch": 3,
        "seq": 7,
        "ts_ns": 1_700_000_000_000_000_000,
        "price": 1.0875,
        "size": 100,
        "side": "B",
    }
    fields.update(changes)
    return Trade(**fields)


def _quote_map(**changes: Any) -> dict[str, Any]:
    raw = quote_wire("AAPL", 1, 5, 1_700_000_000_000_000_000, 189.5, 189.52, 100, 200)
    raw.update(changes)
    return raw


def _trade_map(**changes: Any) -> dict[str, Any]:
    raw = trade_wire("AAPL", 1, 5, 1_700_000_000_000_000_000, 189.52, 100, "B")
    raw.update(changes)
    return raw


def _without(raw: dict[str, Any], name: str) -> dict[str, Any]:
    out = dict(raw)
    del out[name]
    return out


def _pack(obj: object) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def test_helper_maps_are_valid() -> None:
    # The rejection tests below change exactly one thing in these maps.
    assert isinstance(decode(_pack(_quote_map())), Quote)
    assert isinstance(decode(_pack(_trade_map())), Trade)


# --- rejections: bytes and framing ------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x82\xa1v", id="truncated-map"),
        pytest.param(b"\x01\x02", id="extra-data"),
        pytest.param(b"hello, world", id="text"),
        pytest.param(b"\x81\x01\x02", id="integer-key"),
        pytest.param(b"\x81\xa1v\xa2\xff\xfe", id="bad-utf8-string"),
    ],
)
def test_garbage_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match="msgpack"):
        decode(data)


@pytest.mark.parametrize("obj", [[1, 2, 3], 42, "quote", None, b"\x00"])
def test_msgpack_that_is_not_a_map_raises_decode_error(obj: object) -> None:
    with pytest.raises(DecodeError, match="map"):
        decode(_pack(obj))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param(_without(_quote_map(), "v"), "'v'", id="missing-v"),
        pytest.param(_quote_map(v="1"), "'v'", id="string-v"),
        pytest.param(_quote_map(v=True), "'v'", id="bool-v"),
        pytest.param(_quote_map(v=1.0), "'v'", id="float-v"),
        pytest.param(_without(_quote_map(), "type"), "'type'", id="missing-type"),
        pytest.param(_quote_map(type=1), "'type'", id="int-type"),
        pytest.param(_quote_map(type="order"), "order", id="unknown-type"),
    ],
)
def test_bad_framing_raises_decode_error(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(_pack(raw))


@pytest.mark.parametrize("version", [0, 2, 99, -1])
def test_unsupported_version_raises_validation_error(version: int) -> None:
    with pytest.raises(ValidationError, match="version"):
        decode(_pack(_quote_map(v=version)))


# --- rejections: fields -----------------------------------------------------------------------

QUOTE_FIELDS = ["symbol", "epoch", "seq", "ts_ns", "bid", "ask", "bid_size", "ask_size"]
TRADE_FIELDS = ["symbol", "epoch", "seq", "ts_ns", "price", "size", "side"]


@pytest.mark.parametrize("name", QUOTE_FIELDS)
def test_quote_missing_field_raises_decode_error(name: str) -> None:
    with pytest.raises(DecodeError, match=f"missing field '{name}'"):
        decode(_pack(_without(_quote_map(), name)))


@pytest.mark.parametrize("name", TRADE_FIELDS)
def test_trade_missing_field_raises_decode_error(name: str) -> None:
    with pytest.raises(DecodeError, match=f"missing field '{name}'"):
        decode(_pack(_without(_trade_map(), name)))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_quote_map(bid="189.5"), id="string-bid"),
        pytest.param(_quote_map(ask=[189.5]), id="list-ask"),
        pytest.param(_quote_map(bid=None), id="nil-bid"),
        pytest.param(_quote_map(bid=True), id="bool-bid"),
        pytest.param(_quote_map(bid_size=True), id="bool-bid-size"),
        pytest.param(_quote_map(ask_size=100.0), id="float-ask-size"),
        pytest.param(_quote_map(seq="5"), id="string-seq"),
        pytest.param(_quote_map(ts_ns=1.7e18), id="float-ts"),
        pytest.param(_quote_map(symbol=123), id="int-symbol"),
        pytest.param(_quote_map(symbol=b"AAPL"), id="bytes-symbol"),
        pytest.param(_trade_map(price="189.52"), id="string-price"),
        pytest.param(_trade_map(size=True), id="bool-size"),
        pytest.param(_trade_map(size=1.5), id="float-size"),
        pytest.param(_trade_map(side=1), id="int-side"),
    ],
)
def test_wrong_type_raises_decode_error(raw: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=r"must be|symbol"):
        decode(_pack(raw))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_quote_map(bid=math.nan), id="nan-bid"),
        pytest.param(_quote_map(ask=math.inf), id="inf-ask"),
        pytest.param(_quote_map(bid=-math.inf), id="minus-inf-bid"),
        pytest.param(_quote_map(bid=-1.0), id="negative-bid"),
        pytest.param(_quote_map(bid=0.0), id="zero-bid"),
        pytest.param(_quote_map(bid=0), id="zero-int-bid"),
        pytest.param(_quote_map(bid=190.0, ask=189.0), id="crossed"),
        pytest.param(_quote_map(symbol=""), id="empty-symbol"),
        pytest.param(_quote_map(symbol="A" * (SYMBOL_MAX_LEN + 1)), id="17-char-symbol"),
        pytest.param(_quote_map(symbol="aapl"), id="lowercase-symbol"),
        pytest.param(_quote_map(symbol="AAPL\n"), id="symbol-trailing-newline"),
        pytest.param(_quote_map(symbol=".AAPL"), id="symbol-leading-dot"),
        pytest.param(_quote_map(symbol="AA PL"), id="symbol-space"),
        pytest.param(_quote_map(seq=-1), id="negative-seq"),
        pytest.param(_quote_map(epoch=-1), id="negative-epoch"),
        pytest.param(_quote_map(bid_size=-100), id="negative-size"),
        pytest.param(_quote_map(ts_ns=0), id="zero-ts"),
        pytest.param(_trade_map(price=math.nan), id="nan-price"),
        pytest.param(_trade_map(price=0.0), id="zero-price"),
        pytest.param(_trade_map(price=-5.0), id="negative-price"),
        pytest.param(_trade_map(side="X"), id="side-X"),
        pytest.param(_trade_map(side="b"), id="side-lowercase"),
        pytest.param(_trade_map(side=""), id="side-empty"),
        pytest.param(_trade_map(size=0), id="size-zero"),
        pytest.param(_trade_map(size=-1), id="size-negative"),
        pytest.param(_trade_map(seq=-1), id="trade-negative-seq"),
    ],
)
def test_out_of_domain_value_raises_validation_error(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        decode(_pack(raw))
    assert isinstance(info.value, SchemaError)
    assert "\n" not in str(info.value)


def test_symbol_of_exactly_max_length_is_accepted() -> None:
    symbol = "A" * SYMBOL_MAX_LEN
    assert decode_quote(_pack(_quote_map(symbol=symbol))).symbol == symbol


def test_locked_quote_bid_equal_ask_is_accepted() -> None:
    quote = decode(_pack(_quote_map(bid=10.0, ask=10.0)))
    assert isinstance(quote, Quote)
    assert quote.bid == quote.ask == 10.0


def test_errors_are_schema_errors_and_not_retriable() -> None:
    for data in (b"\xc1", _pack(_quote_map(bid=math.nan))):
        with pytest.raises(SchemaError) as info:
            decode(data)
        assert info.value.retriable is False


# --- tolerance: integer prices and unknown fields ---------------------------------------------


def test_integer_prices_on_the_wire_are_floats() -> None:
    quote = decode_quote(_pack(_quote_map(bid=100, ask=101)))
    assert quote.bid == 100.0
    assert quote.ask == 101.0
    assert type(quote.bid) is float
    assert type(quote.ask) is float
    trade = decode(_pack(_trade_map(price=250)))
    assert isinstance(trade, Trade)
    assert trade.price == 250.0
    assert type(trade.price) is float


def test_unknown_extra_fields_are_ignored() -> None:
    extra = {"venue": "XNAS", "flags": [1, 2, 3], "nested": {"a": None}}
    quote = decode_quote(_pack(_quote_map(**extra)))
    assert quote == decode_quote(_pack(_quote_map()))
    trade = decode(_pack(_trade_map(**extra)))
    assert trade == decode(_pack(_trade_map()))


def test_decode_quote_refuses_a_trade() -> None:
    with pytest.raises(DecodeError, match=r"(?i)expected a quote"):
        decode_quote(_trade().encode())


# --- building messages in code ----------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: _quote(bid=101.0, ask=100.0), id="crossed"),
        pytest.param(lambda: _quote(bid=math.nan), id="nan-bid"),
        pytest.param(lambda: _quote(ask=math.inf), id="inf-ask"),
        pytest.param(lambda: _quote(bid=-1.0), id="negative-bid"),
        pytest.param(lambda: _quote(bid=0.0), id="zero-bid"),
        pytest.param(lambda: _quote(seq=-1), id="negative-seq"),
        pytest.param(lambda: _quote(epoch=-1), id="negative-epoch"),
        pytest.param(lambda: _quote(ask_size=-1), id="negative-size"),
        pytest.param(lambda: _quote(ts_ns=0), id="zero-ts"),
        pytest.param(lambda: _quote(symbol=""), id="empty-symbol"),
        pytest.param(lambda: _quote(symbol="aapl"), id="lowercase-symbol"),
        pytest.param(lambda: _quote(symbol="X" * 17), id="long-symbol"),
        pytest.param(lambda: _trade(side="X"), id="trade-side"),
        pytest.param(lambda: _trade(size=0), id="trade-size-zero"),
        pytest.param(lambda: _trade(price=math.nan), id="trade-nan-price"),
        pytest.param(lambda: _trade(seq=-1), id="trade-negative-seq"),
        pytest.param(lambda: _trade(ts_ns=0), id="trade-zero-ts"),
    ],
)
def test_building_a_bad_message_in_code_raises_validation_error(
    build: Callable[[], object],
) -> None:
    with pytest.raises(ValidationError):
        build()


def test_check_symbol_non_string_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        check_symbol(None)
