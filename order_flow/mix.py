"""What the simulated order flow sends: a deterministic mix of orders, and their limit prices.

Pure (no I/O, no clock), so that the same seed gives the same sequence of orders in a unit test
and in ``marketfeed up``. The mix is chosen so that every outcome of order_entry shows up:

- market orders (most of them): filled at the touch;
- marketable limit orders (a limit through the touch): filled;
- passive limit orders (a limit behind the touch): cancelled, orders are immediate-or-cancel;
- deliberately bad orders, rejected: a quantity over order_entry's ``--max-qty``
  (QTY_TOO_LARGE), a symbol outside the tradable set (UNKNOWN_SYMBOL), a limit far outside
  order_entry's ``--limit-band`` (LIMIT_OUT_OF_BAND, a "fat finger").

Limit prices depend on the market, so an :class:`Intent` carries only how far from the touch to
price; :func:`limit_price` turns that into a price against the quote current at send time.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from common.schema import Quote
from feed_publisher.universe import MAX_SYMBOLS, symbol_name

# Quantities of good orders: small round lots, far below any sensible --max-qty.
LOTS = (1, 5, 10, 20, 50, 100, 200, 500)
# How far behind or through the touch a limit is priced, as a fraction of the price: always
# well inside order_entry's default band (10 %), and far more than a cent on a $5 stock.
MIN_OFFSET, MAX_OFFSET = 0.002, 0.02
CENT = 0.01
# Symbols outside the tradable set that the bad orders pick from.
UNKNOWN_SYMBOLS = 5


class Kind(enum.StrEnum):
    MARKET = "market"
    LIMIT_MARKETABLE = "limit_marketable"
    LIMIT_PASSIVE = "limit_passive"
    BAD_QTY = "bad_qty"
    BAD_SYMBOL = "bad_symbol"
    BAD_LIMIT = "bad_limit"

    @property
    def priced(self) -> bool:
        """Whether the order needs a quote to be priced (a limit order)."""
        return self in (Kind.LIMIT_MARKETABLE, Kind.LIMIT_PASSIVE, Kind.BAD_LIMIT)


BAD_KINDS = (Kind.BAD_QTY, Kind.BAD_SYMBOL, Kind.BAD_LIMIT)


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """One order to send: everything but the limit price, which needs the quote of the moment."""

    seq: int  # 0, 1, 2, ... in sending order
    kind: Kind
    account: str
    symbol: str
    side: str  # "B" or "S"
    qty: int
    offset: float  # fraction of the price a limit sits from the touch (limit kinds only)


def account_names(count: int) -> list[str]:
    """``acct-01`` .. ``acct-NN`` (wider numbers past 99, so that they still sort)."""
    width = max(2, len(str(count)))
    return [f"acct-{i:0{width}d}" for i in range(1, count + 1)]


def unknown_symbols(tradable: Sequence[str], count: int = UNKNOWN_SYMBOLS) -> list[str]:
    """The first ``count`` symbols of the simulated universe that are not tradable.

    Real tickers of the feed (when it has more symbols than the tradable set), which order_entry
    must still refuse: the realistic mistake, rather than a made-up name.
    """
    taken = set(tradable)
    out: list[str] = []
    for index in range(MAX_SYMBOLS):
        name = symbol_name(index)
        if name not in taken:
            out.append(name)
            if len(out) == count:
                break
    return out


class OrderMix:
    """An endless, seeded sequence of :class:`Intent`.

    ``limit_ratio`` of the orders carry a limit (half marketable, half passive) and
    ``bad_ratio`` are meant to be rejected (split evenly between the three kinds of mistake);
    the rest are market orders.
    """

    def __init__(
        self,
        *,
        tradable: Sequence[str],
        accounts: Sequence[str],
        max_qty: int,
        limit_ratio: float,
        bad_ratio: float,
        seed: int,
    ) -> None:
        if not tradable or not accounts:
            raise ValueError("an order mix needs tradable symbols and accounts")
        if limit_ratio < 0 or bad_ratio < 0 or limit_ratio + bad_ratio > 1:
            raise ValueError("limit_ratio and bad_ratio must be >= 0 and add up to at most 1")
        if max_qty < 1:
            raise ValueError("max_qty must be >= 1")
        # Sorted: the same set given in another order (a file, a flag) gives the same orders.
        self.tradable = sorted(set(tradable))
        self.accounts = list(accounts)
        self.unknown = unknown_symbols(self.tradable)
        self.max_qty = max_qty
        self.limit_ratio = limit_ratio
        self.bad_ratio = bad_ratio
        self._rng = random.Random(seed)
        self._seq = 0

    def _kind(self, u: float) -> Kind:
        if u < self.bad_ratio:
            return BAD_KINDS[min(int(u / self.bad_ratio * len(BAD_KINDS)), len(BAD_KINDS) - 1)]
        u -= self.bad_ratio
        if u < self.limit_ratio:
            return Kind.LIMIT_MARKETABLE if u < self.limit_ratio / 2 else Kind.LIMIT_PASSIVE
        return Kind.MARKET

    def next(self) -> Intent:
        rng = self._rng
        # The same draws for every kind, so that one kind's numbers never shift the next order.
        kind = self._kind(rng.random())
        account = rng.choice(self.accounts)
        symbol = rng.choice(self.tradable)
        unknown = rng.choice(self.unknown)
        side = rng.choice("BS")
        qty = rng.choice(LOTS)
        too_many = self.max_qty + rng.randint(1, self.max_qty)
        offset = rng.uniform(MIN_OFFSET, MAX_OFFSET)
        intent = Intent(
            seq=self._seq,
            kind=kind,
            account=account,
            symbol=unknown if kind is Kind.BAD_SYMBOL else symbol,
            side=side,
            qty=too_many if kind is Kind.BAD_QTY else qty,
            offset=offset if kind.priced else 0.0,
        )
        self._seq += 1
        return intent


def limit_price(intent: Intent, quote: Quote, *, limit_band: float) -> float | None:
    """The limit of ``intent`` against ``quote`` (None: a market order), in whole cents.

    Rounded away from the touch for a passive order (so that it stays behind it) and through it
    for a marketable one, so that rounding never changes the outcome.
    """
    up = 1.0 + intent.offset
    down = 1.0 - intent.offset
    buy = intent.side == "B"
    if intent.kind is Kind.LIMIT_MARKETABLE:
        return _ceil_cents(quote.ask * up) if buy else _floor_cents(quote.bid * down)
    if intent.kind is Kind.LIMIT_PASSIVE:
        return _floor_cents(quote.bid * down) if buy else _ceil_cents(quote.ask * up)
    if intent.kind is Kind.BAD_LIMIT:
        # Twice the band above the mid: out of band for either side, whatever the band.
        return _ceil_cents(quote.mid * (1.0 + 2.0 * limit_band))
    return None


def _ceil_cents(price: float) -> float:
    return round(math.ceil(round(price / CENT, 6)) * CENT, 2)


def _floor_cents(price: float) -> float:
    return max(round(math.floor(round(price / CENT, 6)) * CENT, 2), CENT)
