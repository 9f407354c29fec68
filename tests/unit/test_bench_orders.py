"""The pure parts of ``marketfeed bench orders``: the echo's answer, settings, ratios, and the
open-loop schedule (on a fake clock; times and rates exact in binary floating point)."""

from __future__ import annotations

import pytest

from common.config import build
from common.errors import ConfigError
from common.schema import NewOrder, OrderFilled, decode
from marketfeed.bench.orders.echo import echo_of
from marketfeed.bench.orders.openloop import OpenLoop
from marketfeed.bench.orders.results import TargetStep, ratios
from marketfeed.bench.orders.settings import OrdersBenchConfig


def test_echo_answers_a_command_with_a_fill_of_the_same_order() -> None:
    order = NewOrder(
        order_id="o-1", account="a", symbol="AAAB", side="S", qty=7, limit=None, ts_ns=1
    )
    event = decode(echo_of(order.encode(), 5) or b"")
    assert isinstance(event, OrderFilled)
    assert (event.order_id, event.symbol, event.side, event.qty, event.ts_ns) == (
        "o-1",
        "AAAB",
        "S",
        7,
        5,
    )


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x80"])
def test_echo_ignores_what_it_cannot_answer(data: bytes) -> None:
    assert echo_of(data, 1) is None


def test_smoke_overrides_and_rates() -> None:
    config = build(OrdersBenchConfig, {"smoke": True}, environ={}).effective()
    assert config.rates == (20.0, None)
    assert not config.fresh_topics
    assert build(OrdersBenchConfig, environ={}).rates == (100.0, 500.0, 1000.0, None)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"order_rates": "100,fast"}, "--order-rates=100,fast: 'fast' is not a number or max"),
        ({"order_rates": "0"}, "--order-rates=0: '0': every rate must be > 0 (or max)"),
        ({"window": "0"}, "--window=0: must be > 0"),
    ],
)
def test_bad_settings_name_the_flag(args: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(OrdersBenchConfig, args, environ={})
    assert str(caught.value) == words


def test_more_tradable_than_symbols_is_refused() -> None:
    config = build(OrdersBenchConfig, {"symbols": "10", "tradable": "20"}, environ={})
    with pytest.raises(ConfigError, match="--tradable=20"):
        config.effective()


def _step(p50: float, p99: float, rate: float, count: int = 10) -> TargetStep:
    return TargetStep(
        target="t",
        window_s=1.0,
        sent=count,
        answered=count,
        unanswered=0,
        send_failed=0,
        achieved_rate=rate,
        latency_ms={"count": count, "p50_ms": p50, "p99_ms": p99},
        latency_lower_bound=False,
        outcomes={},
        reject_reasons={},
        quote_rate=1.0,
        cache_lag_records=None,
        cache_lag_s=None,
        cpu={},
    )


def test_ratios_against_the_baseline() -> None:
    assert ratios(_step(10, 40, 50), _step(2, 8, 100)) == {
        "p50": 5.0,
        "p99": 5.0,
        "throughput": 0.5,
    }
    # No latency measured (no order answered): no ratio, rather than a made-up one.
    assert ratios(_step(10, 40, 50), _step(0, 0, 0, count=0))["p50"] is None


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_open_loop_orders_are_due_on_a_fixed_schedule_and_measured_in_the_window() -> None:
    clock = FakeClock()
    loop = OpenLoop(4.0, warmup=0.5, duration=1.0, clock=clock)
    assert (loop.total, loop.window_at, loop.end) == (6, 1000.5, 1001.5)
    assert loop.take_due() == [1000.0]  # the first is due at the start
    assert loop.take_due() == []
    # Asleep until the next is due, unless the window opens first.
    assert loop.wait_time(window_open=False) == 0.25
    clock.now = 1000.625
    due = loop.take_due()
    assert due == [1000.25, 1000.5]
    assert [loop.measured(t) for t in due] == [False, True]
    assert loop.wait_time(window_open=True) == 0.125


def test_open_loop_sends_every_order_of_the_run_however_late_and_no_more() -> None:
    clock = FakeClock()
    loop = OpenLoop(4.0, warmup=0.5, duration=1.0, clock=clock)
    loop.take_due()
    # A stall past the end: what was due is all due at once, from its intended times, so the
    # stall shows up as latency (coordinated omission); nothing due after the end is sent.
    clock.now = 1003.0
    assert loop.take_due() == [1000.25, 1000.5, 1000.75, 1001.0, 1001.25]
    assert loop.take_due() == []
    assert loop.wait_time(window_open=True) == 0.0


def test_open_loop_wakes_for_the_window_to_open() -> None:
    clock = FakeClock()
    loop = OpenLoop(1.0, warmup=0.25, duration=2.0, clock=clock)
    loop.take_due()
    assert loop.wait_time(window_open=False) == 0.25
    assert loop.wait_time(window_open=True) == 1.0
