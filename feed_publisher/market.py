"""The simulated market: per-symbol geometric Brownian motion, quoted with a spread, with trades.

Generation is vectorised: :meth:`MarketSimulator.step` advances ``n`` ticks at once with numpy and
returns arrays, never one Python object per tick. Each tick picks a symbol (some symbols are
busier than others), moves its mid price by one GBM step, and prints either a quote (bid/ask
around the mid, with sizes) or, with probability ``trade_ratio``, a trade at the touch.

Reproducibility: every random stream is its own generator drawing one value per tick, so the
same seed gives the same ticks however the ticks are split into batches (the rate limiter
decides batch sizes from wall-clock time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

TICK_SIZE = 0.01
# Market time one tick of a symbol stands for, as a fraction of a trading year
# (252 days x 6.5 h), assuming ~10 quote updates a second per symbol.
_DT_YEARS = 0.1 / (252 * 6.5 * 3600)
# Log prices are kept in fixed point, in units of 1e-12 (see _apply_in_order).
_FIXED = 1e12


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    symbol: I64  # index into the universe
    seq: I64
    bid: F64
    ask: F64
    bid_size: I64
    ask_size: I64


@dataclass(frozen=True, slots=True)
class TradeBatch:
    symbol: I64
    seq: I64
    price: F64
    size: I64
    buy: npt.NDArray[np.bool_]  # aggressor side: True = buyer lifted the ask


@dataclass(frozen=True, slots=True)
class TickBatch:
    quotes: QuoteBatch
    trades: TradeBatch

    def __len__(self) -> int:
        return len(self.quotes.symbol) + len(self.trades.symbol)


class MarketSimulator:
    """``symbols`` instruments with their own price, volatility, spread and activity."""

    def __init__(self, symbols: int, *, seed: int, trade_ratio: float = 0.1) -> None:
        if symbols <= 0:
            raise ValueError("symbols must be positive")
        self.symbols = symbols
        self.trade_ratio = trade_ratio
        streams = np.random.SeedSequence(seed).spawn(6)
        setup = np.random.default_rng(streams[0])
        self._pick = np.random.default_rng(streams[1])
        self._shock = np.random.default_rng(streams[2])
        self._kind = np.random.default_rng(streams[3])
        self._sizes = np.random.default_rng(streams[4])
        self._side = np.random.default_rng(streams[5])

        log_mid = np.log(setup.uniform(5.0, 500.0, symbols))
        self._log_mid_fx: I64 = np.round(log_mid * _FIXED).astype(np.int64)
        self.vol: F64 = setup.uniform(0.15, 0.80, symbols)  # annualised
        self.half_spread_bps: F64 = setup.uniform(1.0, 10.0, symbols)
        # Lognormal activity: a few busy names, a long quiet tail, as in a real tape.
        activity = setup.lognormal(0.0, 0.75, symbols)
        self._cum_activity: F64 = np.cumsum(activity / activity.sum())
        self._cum_activity[-1] = 1.0
        self.quote_seq: I64 = np.zeros(symbols, dtype=np.int64)
        self.trade_seq: I64 = np.zeros(symbols, dtype=np.int64)
        self._drift: F64 = -0.5 * self.vol**2 * _DT_YEARS
        self._scale: F64 = self.vol * np.sqrt(_DT_YEARS)

    def mid(self) -> F64:
        return np.exp(self._log_mid_fx / _FIXED)

    def step(self, n: int) -> TickBatch:
        """Advance ``n`` ticks and return them in tick order."""
        sym = np.searchsorted(self._cum_activity, self._pick.random(n), side="right")
        sym = np.minimum(sym, self.symbols - 1).astype(np.int64)
        increments = self._drift[sym] + self._scale[sym] * self._shock.standard_normal(n)
        log_mid = self._apply_in_order(sym, increments)
        mid = np.exp(log_mid)
        half = np.maximum(mid * self.half_spread_bps[sym] * 1e-4, TICK_SIZE / 2)
        bid = np.maximum(np.floor((mid - half) / TICK_SIZE) * TICK_SIZE, TICK_SIZE)
        ask = np.maximum(np.ceil((mid + half) / TICK_SIZE) * TICK_SIZE, bid + TICK_SIZE)
        # Round after the arithmetic so that prices print as cents, not 101.37000000000001.
        bid = np.round(bid, 2).astype(np.float64)
        ask = np.round(ask, 2).astype(np.float64)
        is_trade = self._kind.random(n) < self.trade_ratio
        # One (n, 2) draw, not two of n: row-major order keeps a tick's pair of draws together,
        # so sizes too are the same however ticks are batched.
        sizes = 100 * (1 + (self._sizes.random((n, 2)) * 50).astype(np.int64))
        bid_size, ask_size = sizes[:, 0], sizes[:, 1]
        buy = self._side.random(n) < 0.5

        q = ~is_trade
        quotes = QuoteBatch(
            symbol=sym[q],
            seq=self._next_seq(self.quote_seq, sym[q]),
            bid=bid[q],
            ask=ask[q],
            bid_size=bid_size[q],
            ask_size=ask_size[q],
        )
        t_buy = buy[is_trade]
        trades = TradeBatch(
            symbol=sym[is_trade],
            seq=self._next_seq(self.trade_seq, sym[is_trade]),
            price=np.where(t_buy, ask[is_trade], bid[is_trade]),
            size=np.minimum(np.where(t_buy, ask_size[is_trade], bid_size[is_trade]), 1000),
            buy=t_buy,
        )
        return TickBatch(quotes=quotes, trades=trades)

    def _apply_in_order(self, sym: I64, increments: F64) -> F64:
        """Log mid after each tick, applying the increments of a symbol in tick order.

        A symbol can tick several times in one batch and each tick must see the previous one, so
        increments are summed cumulatively within each symbol's group (a stable sort keeps tick
        order). The sums are done in fixed point (integers are associative, floats are not), which
        is what makes the result independent of how ticks are split into batches.
        """
        order = np.argsort(sym, kind="stable")
        s_sym = sym[order]
        s_inc = np.round(increments[order] * _FIXED).astype(np.int64)
        starts, lengths = _groups(s_sym)
        s_cum = np.cumsum(s_inc)
        before_group = np.repeat(s_cum[starts] - s_inc[starts], lengths)
        s_log = self._log_mid_fx[s_sym] + (s_cum - before_group)
        ends = starts + lengths - 1
        self._log_mid_fx[s_sym[ends]] = s_log[ends]
        out = np.empty(len(sym), dtype=np.float64)
        out[order] = s_log / _FIXED
        return out

    @staticmethod
    def _next_seq(counter: I64, sym: I64) -> I64:
        """Per-symbol sequence numbers for ``sym`` in order, advancing ``counter`` in place."""
        order = np.argsort(sym, kind="stable")
        s_sym = sym[order]
        starts, lengths = _groups(s_sym)
        rank = np.arange(len(s_sym)) - np.repeat(starts, lengths)
        out = np.empty(len(sym), dtype=np.int64)
        out[order] = counter[s_sym] + rank + 1
        counter[s_sym[starts]] += lengths
        return out


def _groups(sorted_keys: I64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start index and length of each run of equal keys in ``sorted_keys``."""
    if len(sorted_keys) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_keys)])
    return starts, lengths
