"""The simulated market (feed_publisher.market) and its symbols (feed_publisher.universe)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from common.schema import check_symbol
from feed_publisher.market import TICK_SIZE, MarketSimulator, QuoteBatch, TickBatch, TradeBatch
from feed_publisher.universe import MAX_SYMBOLS, symbol_name, universe

QUOTE_FIELDS = ("symbol", "seq", "bid", "ask", "bid_size", "ask_size")
TRADE_FIELDS = ("symbol", "seq", "price", "size", "buy")


Arrays = dict[str, npt.NDArray[Any]]


def _concat(batches: list[TickBatch]) -> tuple[Arrays, Arrays]:
    quotes = {f: np.concatenate([getattr(b.quotes, f) for b in batches]) for f in QUOTE_FIELDS}
    trades = {f: np.concatenate([getattr(b.trades, f) for b in batches]) for f in TRADE_FIELDS}
    return quotes, trades


def _assert_gap_free_per_symbol(symbol: npt.NDArray[Any], seq: npt.NDArray[Any]) -> None:
    """For each symbol, its seqs in tick order are exactly 1, 2, 3, ..."""
    if len(symbol) == 0:
        return
    order = np.argsort(symbol, kind="stable")
    s_sym, s_seq = symbol[order], seq[order]
    first = np.r_[True, s_sym[1:] != s_sym[:-1]]
    starts = np.flatnonzero(first)
    group_start = starts[np.cumsum(first) - 1]
    np.testing.assert_array_equal(s_seq, np.arange(len(s_seq)) - group_start + 1)


# --- MarketSimulator --------------------------------------------------------------------------


def test_rejects_non_positive_symbol_count() -> None:
    with pytest.raises(ValueError, match="symbols"):
        MarketSimulator(0, seed=1)


def test_prices_positive_and_bid_below_ask() -> None:
    sim = MarketSimulator(200, seed=7, trade_ratio=0.2)
    for _ in range(5):
        batch = sim.step(10_000)
        q, t = batch.quotes, batch.trades
        assert len(q.symbol) > 0
        assert len(t.symbol) > 0
        assert np.all(q.bid > 0)
        assert np.all(q.bid < q.ask)
        # At least one tick of spread, and prices on the cent grid.
        assert np.all(q.ask - q.bid >= TICK_SIZE - 1e-9)
        np.testing.assert_allclose(q.bid * 100, np.round(q.bid * 100), atol=1e-6)
        np.testing.assert_allclose(q.ask * 100, np.round(q.ask * 100), atol=1e-6)
        assert np.all(t.price > 0)
        assert np.all(np.isfinite(q.bid))
        assert np.all(np.isfinite(q.ask))
        assert np.all((q.symbol >= 0) & (q.symbol < 200))
        assert np.all((t.symbol >= 0) & (t.symbol < 200))
        assert np.all((q.bid_size >= 100) & (q.bid_size % 100 == 0))
        assert np.all((q.ask_size >= 100) & (q.ask_size % 100 == 0))
        assert np.all((t.size >= 100) & (t.size <= 1000))
    assert np.all(sim.mid() > 0)


def test_seq_gap_free_and_increasing_per_symbol_across_steps() -> None:
    sim = MarketSimulator(20, seed=3, trade_ratio=0.3)
    batches = [sim.step(n) for n in (1, 500, 0, 37, 2_000, 1)]
    quotes, trades = _concat(batches)
    _assert_gap_free_per_symbol(quotes["symbol"], quotes["seq"])
    _assert_gap_free_per_symbol(trades["symbol"], trades["seq"])
    # Quote and trade sequences are separate: the counters count only their own messages.
    np.testing.assert_array_equal(sim.quote_seq, np.bincount(quotes["symbol"], minlength=20))
    np.testing.assert_array_equal(sim.trade_seq, np.bincount(trades["symbol"], minlength=20))


def test_same_seed_gives_identical_ticks() -> None:
    a = MarketSimulator(100, seed=42, trade_ratio=0.25)
    b = MarketSimulator(100, seed=42, trade_ratio=0.25)
    for n in (10, 1_000, 333):
        x, y = a.step(n), b.step(n)
        for f in QUOTE_FIELDS:
            np.testing.assert_array_equal(getattr(x.quotes, f), getattr(y.quotes, f))
        for f in TRADE_FIELDS:
            np.testing.assert_array_equal(getattr(x.trades, f), getattr(y.trades, f))
    np.testing.assert_array_equal(a.mid(), b.mid())


@pytest.mark.parametrize(
    "split",
    [(300, 700), (1, 999), (500, 500), (999, 1), (100,) * 10, (0, 1000, 0)],
    ids=str,
)
def test_batch_split_does_not_change_any_tick(split: tuple[int, ...]) -> None:
    whole = MarketSimulator(50, seed=11, trade_ratio=0.2)
    one = whole.step(sum(split))
    parts = MarketSimulator(50, seed=11, trade_ratio=0.2)
    quotes, trades = _concat([parts.step(n) for n in split])
    for f in QUOTE_FIELDS:
        np.testing.assert_array_equal(getattr(one.quotes, f), quotes[f], err_msg=f"quotes.{f}")
    for f in TRADE_FIELDS:
        np.testing.assert_array_equal(getattr(one.trades, f), trades[f], err_msg=f"trades.{f}")
    np.testing.assert_array_equal(whole.mid(), parts.mid())
    np.testing.assert_array_equal(whole.quote_seq, parts.quote_seq)
    np.testing.assert_array_equal(whole.trade_seq, parts.trade_seq)


def test_batch_split_does_not_change_sizes() -> None:
    one = MarketSimulator(50, seed=11, trade_ratio=0.2).step(1000)
    parts = MarketSimulator(50, seed=11, trade_ratio=0.2)
    quotes, trades = _concat([parts.step(n) for n in (1, 299, 3, 697)])
    np.testing.assert_array_equal(one.quotes.bid_size, quotes["bid_size"])
    np.testing.assert_array_equal(one.quotes.ask_size, quotes["ask_size"])
    np.testing.assert_array_equal(one.trades.size, trades["size"])


def test_bid_and_ask_sizes_are_independent_draws() -> None:
    """Split invariance must not come from drawing one size for both sides."""
    q = MarketSimulator(50, seed=11, trade_ratio=0.0).step(5000).quotes
    assert len(q.bid_size) == 5000
    same = np.mean(q.bid_size == q.ask_size)
    assert same < 0.1  # 50 equally likely sizes: about 2% agree by chance
    assert len(np.unique(q.bid_size)) == 50
    assert len(np.unique(q.ask_size)) == 50
    assert abs(np.corrcoef(q.bid_size, q.ask_size)[0, 1]) < 0.1


def test_different_seeds_differ() -> None:
    a = MarketSimulator(100, seed=1).step(1000)
    b = MarketSimulator(100, seed=2).step(1000)
    assert not np.array_equal(a.quotes.symbol, b.quotes.symbol)
    assert not np.array_equal(a.quotes.bid[:100], b.quotes.bid[:100])


def test_step_zero_is_empty() -> None:
    sim = MarketSimulator(10, seed=5)
    batch = sim.step(0)
    assert len(batch) == 0
    assert isinstance(batch.quotes, QuoteBatch)
    assert isinstance(batch.trades, TradeBatch)
    for f in QUOTE_FIELDS:
        assert len(getattr(batch.quotes, f)) == 0
    for f in TRADE_FIELDS:
        assert len(getattr(batch.trades, f)) == 0
    assert not sim.quote_seq.any()
    assert not sim.trade_seq.any()
    # And it does not disturb the stream that follows.
    np.testing.assert_array_equal(
        sim.step(100).quotes.bid, MarketSimulator(10, seed=5).step(100).quotes.bid
    )


def test_len_counts_quotes_and_trades() -> None:
    batch = MarketSimulator(10, seed=5, trade_ratio=0.5).step(777)
    assert len(batch) == 777
    assert len(batch.quotes.symbol) + len(batch.trades.symbol) == 777


def test_works_with_50000_symbols() -> None:
    sim = MarketSimulator(50_000, seed=9)
    batch = sim.step(20_000)
    q = batch.quotes
    assert len(batch) == 20_000
    assert q.symbol.min() >= 0
    assert q.symbol.max() < 50_000
    assert len(np.unique(q.symbol)) > 5_000
    assert np.all(q.bid > 0)
    assert np.all(q.bid < q.ask)
    _assert_gap_free_per_symbol(q.symbol, q.seq)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_trade_share_follows_trade_ratio(ratio: float) -> None:
    batch = MarketSimulator(100, seed=13, trade_ratio=ratio).step(20_000)
    share = len(batch.trades.symbol) / 20_000
    # Binomial std at 20k ticks is at most 0.0035; 0.015 is more than four of them.
    assert share == pytest.approx(ratio, abs=0.015)


def test_trades_print_at_the_touch() -> None:
    """A buyer lifts the ask, a seller hits the bid.

    The trade ratio only decides which ticks are trades (its own random stream), so the same seed
    with ratio 0 (all quotes) and ratio 1 (all trades) gives the quote each trade printed against.
    """
    quotes = MarketSimulator(30, seed=21, trade_ratio=0.0).step(5_000).quotes
    trades = MarketSimulator(30, seed=21, trade_ratio=1.0).step(5_000).trades
    assert len(quotes.symbol) == len(trades.symbol) == 5_000
    np.testing.assert_array_equal(quotes.symbol, trades.symbol)
    np.testing.assert_array_equal(quotes.seq, trades.seq)
    assert trades.buy.any()
    assert (~trades.buy).any()
    np.testing.assert_array_equal(trades.price[trades.buy], quotes.ask[trades.buy])
    np.testing.assert_array_equal(trades.price[~trades.buy], quotes.bid[~trades.buy])
    expected_size = np.minimum(np.where(trades.buy, quotes.ask_size, quotes.bid_size), 1000)
    np.testing.assert_array_equal(trades.size, expected_size)


# --- universe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "name"),
    [
        (0, "AAAA"),
        (1, "AAAB"),
        (25, "AAAZ"),
        (26, "AABA"),
        (26**2, "ABAA"),
        (MAX_SYMBOLS - 1, "ZZZZ"),
    ],
)
def test_symbol_name(index: int, name: str) -> None:
    assert symbol_name(index) == name


def test_universe_names_unique_sorted_and_valid() -> None:
    names = universe(50_000)
    assert len(names) == 50_000
    assert len(set(names)) == 50_000
    # Sorted, so "the first n symbols" is a prefix of any larger universe.
    assert names == sorted(names)
    assert universe(10) == names[:10]
    for name in names:
        assert check_symbol(name) == name
        assert len(name) == 4


@pytest.mark.parametrize("index", [-1, MAX_SYMBOLS, MAX_SYMBOLS + 1, -(10**9)])
def test_symbol_name_out_of_range(index: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        symbol_name(index)


def test_max_symbols() -> None:
    assert MAX_SYMBOLS == 26**4
    assert universe(0) == []
