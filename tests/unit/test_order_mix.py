"""order_flow.mix: the simulated order flow is seeded, has every kind, and prices limits right.

A limit priced here must get the outcome its kind promises from order_entry's own decision
(``order_entry.validate.decide``) against the same quote: that is the contract that makes every
outcome show up in ``marketfeed up``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.schema import NewOrder, OrderCancelled, OrderFilled, OrderRejected, Quote
from common.schema.orders import (
    REJECT_LIMIT_OUT_OF_BAND,
    REJECT_QTY_TOO_LARGE,
    REJECT_UNKNOWN_SYMBOL,
)
from feed_publisher.universe import universe
from order_entry.validate import Limits, decide
from order_flow.mix import (
    BAD_KINDS,
    Intent,
    Kind,
    OrderMix,
    account_names,
    limit_price,
    unknown_symbols,
)

TRADABLE = universe(20)
TS = 1_700_000_000_000_000_000
LIMITS = Limits(max_qty=1000, limit_band=0.10, stale_after=5.0)


def mix(seed: int = 1, **kw: float) -> OrderMix:
    return OrderMix(
        tradable=TRADABLE,
        accounts=account_names(3),
        max_qty=LIMITS.max_qty,
        limit_ratio=kw.get("limit_ratio", 0.2),
        bad_ratio=kw.get("bad_ratio", 0.05),
        seed=seed,
    )


def test_account_names() -> None:
    assert account_names(3) == ["acct-01", "acct-02", "acct-03"]
    assert account_names(100)[-1] == "acct-100"
    assert account_names(100)[0] == "acct-001"


def test_unknown_symbols_are_outside_the_tradable_set() -> None:
    assert unknown_symbols(TRADABLE) == universe(25)[20:]
    assert unknown_symbols(["AAAB"], 2) == ["AAAA", "AAAC"]


def test_same_seed_same_orders_other_seed_other_orders() -> None:
    a, b, c = mix(7), mix(7), mix(8)
    first = [a.next() for _ in range(200)]
    assert first == [b.next() for _ in range(200)]
    assert first != [c.next() for _ in range(200)]
    assert [i.seq for i in first] == list(range(200))


def test_tradable_order_does_not_matter() -> None:
    a = mix(3)
    b = OrderMix(
        tradable=list(reversed(TRADABLE)),
        accounts=account_names(3),
        max_qty=LIMITS.max_qty,
        limit_ratio=0.2,
        bad_ratio=0.05,
        seed=3,
    )
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_mix_has_every_kind_in_about_the_configured_shares() -> None:
    m = mix(1, limit_ratio=0.2, bad_ratio=0.06)
    intents = [m.next() for _ in range(5000)]
    kinds = Counter(i.kind for i in intents)
    assert set(kinds) == set(Kind)
    assert kinds[Kind.MARKET] / 5000 == pytest.approx(0.74, abs=0.03)
    assert kinds[Kind.LIMIT_MARKETABLE] / 5000 == pytest.approx(0.10, abs=0.02)
    assert kinds[Kind.LIMIT_PASSIVE] / 5000 == pytest.approx(0.10, abs=0.02)
    for kind in BAD_KINDS:
        assert kinds[kind] / 5000 == pytest.approx(0.02, abs=0.01)
    for i in intents:
        assert i.account in {"acct-01", "acct-02", "acct-03"}
        if i.kind is Kind.BAD_SYMBOL:
            assert i.symbol not in TRADABLE
        else:
            assert i.symbol in TRADABLE
        if i.kind is Kind.BAD_QTY:
            assert i.qty > LIMITS.max_qty
        else:
            assert 1 <= i.qty <= LIMITS.max_qty


def test_no_bad_orders_and_no_limits_when_turned_off() -> None:
    m = mix(1, limit_ratio=0.0, bad_ratio=0.0)
    assert {m.next().kind for _ in range(500)} == {Kind.MARKET}


@pytest.mark.parametrize(
    "kw", [{"limit_ratio": 0.8, "bad_ratio": 0.3}, {"limit_ratio": -0.1}, {"bad_ratio": 1.5}]
)
def test_bad_ratios_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="ratio"):
        mix(1, **kw)


def quote(bid: float, ask: float) -> Quote:
    return Quote(
        symbol="AAAA", epoch=1, seq=1, ts_ns=TS, bid=bid, ask=ask, bid_size=100, ask_size=100
    )


def outcome(intent: Intent, q: Quote) -> type:
    order = NewOrder(
        order_id="o",
        account=intent.account,
        symbol=intent.symbol,
        side=intent.side,
        qty=intent.qty,
        limit=limit_price(intent, q, limit_band=LIMITS.limit_band),
        ts_ns=TS,
    )
    events = decide(order, tradable=set(TRADABLE), quote=q, limits=LIMITS, now_ns=TS)
    return type(events[-1])


EXPECTED = {
    Kind.MARKET: OrderFilled,
    Kind.LIMIT_MARKETABLE: OrderFilled,
    Kind.LIMIT_PASSIVE: OrderCancelled,
    Kind.BAD_QTY: OrderRejected,
    Kind.BAD_SYMBOL: OrderRejected,
    Kind.BAD_LIMIT: OrderRejected,
}


@given(
    seed=st.integers(0, 2**32 - 1),
    mid=st.floats(5.0, 500.0),
    half_spread_bps=st.floats(1.0, 10.0),
)
def test_every_kind_gets_its_outcome_from_order_entry(
    seed: int, mid: float, half_spread_bps: float
) -> None:
    # Quotes as the simulated market makes them: cents, at least a cent apart.
    half = max(mid * half_spread_bps * 1e-4, 0.005)
    bid, ask = round(mid - half, 2), round(mid + half, 2)
    ask = max(ask, round(bid + 0.01, 2))
    q = quote(bid, ask)
    m = mix(seed, limit_ratio=0.5, bad_ratio=0.3)
    for _ in range(30):
        intent = m.next()
        assert outcome(intent, q) is EXPECTED[intent.kind], intent


def test_rejections_carry_the_reason_of_their_kind() -> None:
    q = quote(99.99, 100.01)
    m = mix(5, limit_ratio=0.0, bad_ratio=1.0)
    reasons = {
        Kind.BAD_QTY: REJECT_QTY_TOO_LARGE,
        Kind.BAD_SYMBOL: REJECT_UNKNOWN_SYMBOL,
        Kind.BAD_LIMIT: REJECT_LIMIT_OUT_OF_BAND,
    }
    seen = set()
    for _ in range(60):
        intent = m.next()
        order = NewOrder(
            order_id="o",
            account=intent.account,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            limit=limit_price(intent, q, limit_band=LIMITS.limit_band),
            ts_ns=TS,
        )
        (event,) = decide(order, tradable=set(TRADABLE), quote=q, limits=LIMITS, now_ns=TS)
        assert isinstance(event, OrderRejected)
        assert event.reason == reasons[intent.kind]
        seen.add(intent.kind)
    assert seen == set(BAD_KINDS)


def test_limit_prices_are_whole_cents_on_the_right_side_of_the_touch() -> None:
    q = quote(10.00, 10.02)
    base = Intent(
        seq=0, kind=Kind.LIMIT_MARKETABLE, account="a", symbol="AAAA", side="B", qty=1, offset=0.01
    )
    assert limit_price(base, q, limit_band=0.1) == 10.13  # 10.02 * 1.01 = 10.1202, up
    sell = replace(base, side="S")
    assert limit_price(sell, q, limit_band=0.1) == 9.90  # 10.00 * 0.99, down
    passive_buy = replace(base, kind=Kind.LIMIT_PASSIVE)
    assert limit_price(passive_buy, q, limit_band=0.1) == 9.90
    passive_sell = replace(base, kind=Kind.LIMIT_PASSIVE, side="S")
    assert limit_price(passive_sell, q, limit_band=0.1) == 10.13
    fat = replace(base, kind=Kind.BAD_LIMIT)
    assert limit_price(fat, q, limit_band=0.1) == 12.02  # mid 10.01 * 1.2 = 12.012, up
    market = replace(base, kind=Kind.MARKET)
    assert limit_price(market, q, limit_band=0.1) is None
