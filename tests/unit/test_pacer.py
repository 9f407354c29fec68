"""feed_publisher.pacer: a fixed schedule that never slides, driven here by a fake clock.

Message k (0-indexed) is due at ``start + k / rate``: at ``start`` exactly one message is due.
Times and rates are chosen so that every product is exact in binary floating point.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feed_publisher.pacer import Pacer


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize(("rate", "max_batch"), [(0, 10), (-1.0, 10), (100.0, 0), (100.0, -5)])
def test_rejects_non_positive_rate_or_batch(rate: float, max_batch: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(rate, max_batch=max_batch, clock=FakeClock())


def test_first_message_is_due_at_start(clock: FakeClock) -> None:
    pacer = Pacer(100.0, max_batch=1000, clock=clock)
    assert pacer.start == 1000.0
    assert pacer.due() == 1
    assert pacer.wait_time() == 0.0
    assert pacer.intended(1) == (1000.0, 1000.0)
    # Asking does not release anything.
    assert pacer.due() == 1
    assert pacer.released == 0


def test_message_k_is_due_exactly_at_start_plus_k_over_rate(clock: FakeClock) -> None:
    pacer = Pacer(4.0, max_batch=1000, clock=clock)
    tiny = 2.0**-20
    # Message 3 is due at 1000.75: just before, messages 0..2 are due; at it, 0..3.
    clock.now = 1000.75 - tiny
    assert pacer.due() == 3
    clock.now = 1000.75
    assert pacer.due() == 4
    clock.now = 1001.0 - tiny
    assert pacer.due() == 4
    clock.now = 1001.0
    assert pacer.due() == 5


def test_due_grows_at_the_rate(clock: FakeClock) -> None:
    pacer = Pacer(100.0, max_batch=1000, clock=clock)
    assert pacer.due() == 1
    clock.advance(0.25)
    assert pacer.due() == 26  # messages 0..25
    clock.advance(0.25)
    assert pacer.due() == 51
    clock.advance(0.5)
    assert pacer.due() == 101


def test_due_is_capped_at_max_batch(clock: FakeClock) -> None:
    pacer = Pacer(1000.0, max_batch=64, clock=clock)
    clock.advance(0.03125)  # messages 0..31 (31.25 intervals elapsed)
    assert pacer.due() == 32
    clock.advance(1.0)
    assert pacer.due() == 64


def test_max_batch_of_one_still_releases_at_start(clock: FakeClock) -> None:
    pacer = Pacer(1000.0, max_batch=1, clock=clock)
    assert pacer.due() == 1
    clock.advance(1.0)
    assert pacer.due() == 1


def test_release_reduces_due(clock: FakeClock) -> None:
    pacer = Pacer(100.0, max_batch=1000, clock=clock)
    clock.advance(0.5)
    assert pacer.due() == 51
    pacer.release(20)
    assert pacer.released == 20
    assert pacer.due() == 31
    pacer.release(31)
    assert pacer.due() == 0
    clock.advance(0.125)  # 62.5 intervals: messages 0..62 due, 51 out
    assert pacer.due() == 12


def test_due_never_negative_when_released_ahead(clock: FakeClock) -> None:
    pacer = Pacer(128.0, max_batch=1000, clock=clock)
    pacer.release(10)
    assert pacer.due() == 0
    assert pacer.wait_time() == 10 / 128.0
    clock.advance(0.0625)  # messages 0..8 due, 10 already out
    assert pacer.due() == 0
    clock.advance(0.0625)  # messages 0..16 due
    assert pacer.due() == 7


def test_intended_times_follow_the_schedule(clock: FakeClock) -> None:
    pacer = Pacer(8.0, max_batch=1000, clock=clock)
    assert pacer.intended(1) == (1000.0, 1000.0)
    assert pacer.intended(8) == (1000.0, 1000.875)
    pacer.release(4)
    first, last = pacer.intended(2)
    assert first == 1000.5
    assert last == 1000.625
    # Intended times depend only on the schedule, not on the clock.
    clock.advance(60.0)
    assert pacer.intended(2) == (1000.5, 1000.625)


def test_wait_time_until_next_due(clock: FakeClock) -> None:
    pacer = Pacer(4.0, max_batch=1000, clock=clock)
    assert pacer.wait_time() == 0.0  # message 0 is due now
    pacer.release(pacer.due())
    assert pacer.released == 1
    assert pacer.wait_time() == 0.25
    clock.advance(0.125)
    assert pacer.wait_time() == 0.125
    assert pacer.due() == 0
    clock.advance(0.125)
    assert pacer.wait_time() == 0.0
    assert pacer.due() == 1
    clock.advance(1.0)
    assert pacer.wait_time() == 0.0  # behind schedule: never negative
    assert pacer.due() == 5  # messages 1..5
    pacer.release(pacer.due())
    assert pacer.due() == 0
    assert pacer.wait_time() == 0.25


def test_wait_time_agrees_with_due(clock: FakeClock) -> None:
    """Sleeping wait_time() always makes a message due, and never sooner than needed."""
    pacer = Pacer(8.0, max_batch=1000, clock=clock)
    assert pacer.wait_time() == 0.0
    assert pacer.due() == 1
    pacer.release(1)
    for _ in range(20):
        wait = pacer.wait_time()
        assert wait == 1 / 8.0
        assert pacer.due() == 0
        clock.advance(wait)
        assert pacer.wait_time() == 0.0
        assert pacer.due() == 1
        pacer.release(1)
    assert pacer.released == 21
    assert clock.now == 1000.0 + 20 / 8.0


def test_on_time_publisher_records_no_lateness(clock: FakeClock) -> None:
    """A publisher that sleeps wait_time() and then sends what is due is never late or early."""
    pacer = Pacer(4.0, max_batch=1000, clock=clock)
    lateness = []
    for _ in range(12):
        clock.advance(pacer.wait_time())
        n = pacer.due()
        assert n == 1
        first, last = pacer.intended(n)
        assert first == last
        lateness.append(clock.now - first)
        pacer.release(n)
    assert lateness == [0.0] * 12
    assert clock.now == 1000.0 + 11 / 4.0


def test_slow_loop_lateness_is_bounded_by_its_period(clock: FakeClock) -> None:
    """Waking every 1/8 s at 64 msg/s: 8 messages per wake-up, late by 0 to 7/64 s each."""
    rate = 64.0
    pacer = Pacer(rate, max_batch=1000, clock=clock)
    pacer.release(pacer.due())  # message 0 at start
    for _ in range(10):
        clock.advance(0.125)
        n = pacer.due()
        assert n == 8
        first, last = pacer.intended(n)
        assert clock.now - last == 0.0  # the newest due message was due right now
        assert clock.now - first == 7 / rate
        pacer.release(n)
    assert pacer.released == 81


def test_set_rate_restarts_the_schedule(clock: FakeClock) -> None:
    pacer = Pacer(100.0, max_batch=10_000, clock=clock)
    clock.advance(1.0)
    pacer.release(pacer.due())
    assert pacer.released == 101  # messages 0..100
    clock.advance(0.5)  # 50 more owed under the old rate
    assert pacer.due() == 50
    pacer.set_rate(8.0)
    assert pacer.rate == 8.0
    assert pacer.start == clock.now
    assert pacer.released == 0
    # The backlog of the old rate is dropped; the new schedule starts now with its message 0.
    assert pacer.due() == 1
    assert pacer.wait_time() == 0.0
    assert pacer.intended(1) == (clock.now, clock.now)
    pacer.release(1)
    clock.advance(1.0)
    assert pacer.due() == 8  # messages 1..8 of the new schedule


@pytest.mark.parametrize("rate", [0.0, -10.0])
def test_set_rate_rejects_non_positive(clock: FakeClock, rate: float) -> None:
    pacer = Pacer(100.0, max_batch=10, clock=clock)
    with pytest.raises(ValueError, match="positive"):
        pacer.set_rate(rate)
    assert pacer.rate == 100.0


def test_stall_is_caught_up_without_sliding_the_schedule(clock: FakeClock) -> None:
    """Coordinated omission: a stall shows as lateness and a catch-up, never a later schedule."""
    rate, max_batch = 1024.0, 256
    pacer = Pacer(rate, max_batch=max_batch, clock=clock)
    # Normal running: 0.25 s, released as it comes due.
    pacer.release(pacer.due())
    for _ in range(8):
        clock.advance(0.03125)
        assert pacer.due() == 32
        pacer.release(pacer.due())
    assert pacer.released == 257  # messages 0..256
    assert pacer.due() == 0
    # The process stalls for 2 s: due() jumps to the cap.
    clock.advance(2.0)
    assert pacer.due() == max_batch
    first, _ = pacer.intended(max_batch)
    # The first message after the stall was due one interval after the last release, and its
    # lateness is visible in full.
    assert first == 1000.25 + 1 / rate
    assert clock.now - first == 2.0 - 1 / rate
    # Catching up: full batches until the schedule is met, with the clock standing still.
    batches = []
    while (n := pacer.due()) > 0:
        assert n <= max_batch
        batches.append(n)
        pacer.release(n)
    assert batches == [max_batch] * 8  # 2048 messages became due during the stall
    # Everything owed since the start was released: the schedule did not move.
    assert pacer.released == 2305  # messages 0..2304, the last due at 1002.25
    assert pacer.start == 1000.0
    assert pacer.intended(1)[0] == 1000.0 + 2305 / rate
    # Back on schedule: the next message is one interval away, not 2 s later than planned.
    assert pacer.wait_time() == 1 / rate
    clock.advance(pacer.wait_time())
    assert pacer.due() == 1


def test_uncapped_stall_makes_every_missed_message_due_at_once(clock: FakeClock) -> None:
    pacer = Pacer(16.0, max_batch=1_000_000, clock=clock)
    pacer.release(pacer.due())
    clock.advance(3.0)
    assert pacer.due() == 48
    first, last = pacer.intended(48)
    assert (first, last) == (1000.0 + 1 / 16, 1003.0)


@given(
    exponent=st.integers(min_value=0, max_value=10),
    max_batch=st.integers(min_value=1, max_value=40),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2048), st.floats(0.0, 1.0)),
        max_size=30,
    ),
)
def test_never_early_never_withheld(
    exponent: int, max_batch: int, steps: list[tuple[int, float]]
) -> None:
    """Whatever the wake-ups: nothing due is released early, and nothing due is held back.

    Advances are multiples of 2**-10 s and rates powers of two, so the arithmetic is exact.
    """
    rate = 2.0**exponent
    clock = FakeClock()
    pacer = Pacer(rate, max_batch=max_batch, clock=clock)
    for ticks, share in steps:
        clock.advance(ticks / 1024)
        n = pacer.due()
        assert 0 <= n <= max_batch
        # due() and wait_time() agree on whether a message is due.
        assert (n > 0) == (pacer.wait_time() == 0.0)
        if n > 0:
            # The last message handed out was due by now.
            assert pacer.intended(n)[1] <= clock.now
        if n < max_batch:
            # The next message after them is not due yet.
            assert pacer.start + (pacer.released + n) / rate > clock.now
        # The publisher may send only part of what is due; the rest stays due.
        sent = round(n * share)
        pacer.release(sent)
        if n < max_batch:
            assert pacer.due() == n - sent
        else:
            assert pacer.due() >= n - sent
    assert pacer.start == 1000.0
