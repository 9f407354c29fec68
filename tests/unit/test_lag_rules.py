"""marketfeed.lag.rules: offset and time lag, rates, live / idle / stalled / down from samples."""

from __future__ import annotations

import pytest

from marketfeed.lag.rules import (
    LagState,
    LagTracker,
    PartitionLag,
    PartitionPass,
    Stall,
    Thresholds,
    rate,
    service_state,
    time_lag_s,
)
from marketfeed.lag.sample import CacheSample, PartitionSample, offset_lag, worst_fresh
from marketfeed.lag.verdict import number_ranges, stalled_reason, worst_state

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a wall-clock instant, ns


def part(
    number: int,
    hw: int,
    applied: int | None,
    *,
    ts_ns: int | None = None,
    kts_ms: int | None = None,
) -> PartitionSample:
    return PartitionSample(
        partition=number,
        high_watermark=hw,
        applied_offset=applied,
        quote_ts_ns=ts_ns,
        kafka_ts_ms=kts_ms,
    )


def sample(
    at_s: float,
    *parts: PartitionSample,
    heartbeat_age_s: float | None = 0.2,
    has_meta: bool = True,
    service: str = "order_entry",
) -> CacheSample:
    began = T0 + int(at_s * S)
    now = began + S // 100  # the cache is read 10 ms after the watermarks
    return CacheSample(
        service=service,
        began_ns=began,
        now_ns=now,
        has_meta=has_meta,
        heartbeat_ns=None if heartbeat_age_s is None else now - int(heartbeat_age_s * S),
        partitions={p.partition: p for p in parts},
    )


# -- offset lag --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hw", "applied", "lag"),
    [
        (100, 99, 0),  # applied the last record: caught up
        (100, 89, 10),
        (100, 120, 0),  # applied past a watermark read a moment earlier: clipped, not -20
        (0, None, 0),  # an empty partition
        (5, None, 5),  # nothing applied yet: every record waits
    ],
)
def test_offset_lag_is_watermark_minus_next_offset_clipped_at_zero(
    hw: int, applied: int | None, lag: int
) -> None:
    assert offset_lag(hw, applied) == lag
    assert part(0, hw, applied).offset_lag == lag


# -- time lag ----------------------------------------------------------------------------------


def test_time_lag_is_zero_when_caught_up_however_old_the_last_quote() -> None:
    hours_ago = T0 - 3 * 3600 * S
    assert time_lag_s(0, hours_ago, T0) == 0.0


def test_time_lag_is_age_of_last_applied_record_when_behind() -> None:
    assert time_lag_s(7, T0 - 250_000_000, T0) == pytest.approx(0.25)


def test_time_lag_is_bounded_by_when_the_partition_was_last_caught_up() -> None:
    # The feed was quiet for an hour, then a burst: the consumer is behind by at most the time
    # since it was last seen caught up, not by the hour of silence.
    an_hour_ago = T0 - 3600 * S
    assert time_lag_s(3, an_hour_ago, T0, caught_up_ns=T0 - S) == pytest.approx(1.0)


def test_time_lag_unknown_without_a_publish_time() -> None:
    assert time_lag_s(3, None, T0) is None


def test_position_time_is_the_later_of_quote_time_and_kafka_time() -> None:
    # A filtered record (no quote decoded) later than the last quote applied moves the position.
    p = part(0, 10, 5, ts_ns=T0 - 2 * S, kts_ms=(T0 - S) // 1_000_000)
    assert p.position_ts_ns == T0 - S
    assert part(0, 10, 5, ts_ns=T0).position_ts_ns == T0
    assert part(0, 10, None).position_ts_ns is None


# -- rates and freshness -----------------------------------------------------------------------


def test_rate_is_offset_change_per_second_and_unknown_across_a_reset() -> None:
    assert rate(100, 1100, 0.5) == 2000.0
    assert rate(None, 1100, 1.0) is None
    assert rate(1100, 100, 1.0) is None
    assert rate(100, 200, 0.0) is None


def test_worst_fresh_puts_uncached_first_then_oldest() -> None:
    ages = {"AAAA": 0.1, "AAAB": 5.0, "AAAC": None, "AAAD": 2.0}
    assert [s.symbol for s in worst_fresh(ages, 3)] == ["AAAC", "AAAB", "AAAD"]
    assert worst_fresh(ages, 0) == ()


# -- states ------------------------------------------------------------------------------------


def test_live_when_applying_and_rates_from_two_samples() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 990, ts_ns=T0), part(1, 500, 499, ts_ns=T0)))
    lag = tracker.update(
        sample(1, part(0, 2000, 1995, ts_ns=T0 + S), part(1, 700, 699, ts_ns=T0 + S))
    )
    assert lag.state == LagState.LIVE
    assert lag.offset_lag == 4
    assert [p.offset_lag for p in lag.partitions] == [4, 0]
    assert lag.in_rate == pytest.approx(1000 + 200)
    assert lag.apply_rate == pytest.approx(1005 + 200)
    assert lag.partitions[1].time_lag_s == 0.0
    assert lag.partitions[0].time_lag_s == pytest.approx(0.01)  # read 10 ms after ts


def test_caught_up_with_records_arriving_is_live_not_idle() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 999)))
    lag = tracker.update(sample(1, part(0, 2000, 1999)))
    assert lag.state == LagState.LIVE
    assert lag.partitions[0].state == LagState.LIVE


def test_quiet_feed_is_idle_with_zero_time_lag() -> None:
    hours_ago = T0 - 5 * 3600 * S
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 999, ts_ns=hours_ago)))
    lag = tracker.update(sample(1, part(0, 1000, 999, ts_ns=hours_ago)))
    assert lag.state == LagState.IDLE
    assert lag.time_lag_s == 0.0
    assert lag.partitions[0].state == LagState.IDLE


def test_empty_topic_is_idle() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 0, None), part(1, 0, None)))
    lag = tracker.update(sample(1, part(0, 0, None), part(1, 0, None)))
    assert (lag.state, lag.offset_lag, lag.time_lag_s) == (LagState.IDLE, 0, 0.0)


def test_stalled_when_lag_grows_and_applied_offsets_do_not_move() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 900, ts_ns=T0), part(1, 50, 49)))
    lag = tracker.update(sample(1, part(0, 1500, 900, ts_ns=T0), part(1, 50, 49)))
    assert lag.state == LagState.STALLED
    assert "partition 0" in lag.reason
    assert "99 -> 599" in lag.reason
    assert lag.partitions[0].state == LagState.STALLED
    assert lag.partitions[0].apply_rate == 0.0


def test_not_stalled_when_the_applied_offset_moves() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 900)))
    lag = tracker.update(sample(1, part(0, 1500, 901)))
    assert lag.state == LagState.LIVE


def test_not_stalled_by_records_that_just_arrived() -> None:
    # Caught up at the first look; a record lands just before the second: one look with lag
    # is not a stall.
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 10, 9)))
    assert tracker.update(sample(1, part(0, 11, 9))).state == LagState.LIVE
    # Still not applied a second later: now it is.
    assert tracker.update(sample(2, part(0, 11, 9))).state == LagState.STALLED


def test_not_stalled_before_stall_after_has_passed() -> None:
    tracker = LagTracker(Thresholds(stall_after_s=2.0))
    tracker.update(sample(0, part(0, 100, 50)))
    assert tracker.update(sample(1, part(0, 200, 50))).state == LagState.LIVE
    assert tracker.update(sample(2, part(0, 300, 50))).state == LagState.STALLED


def test_one_partition_stalled_while_others_move_is_stalled_and_named() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 1000, 900), part(1, 1000, 900)))
    lag = tracker.update(sample(1, part(0, 1500, 900), part(1, 1500, 1400)))
    assert lag.state == LagState.STALLED
    assert lag.reason.startswith("1 of 2 partitions stalled: 0 ")
    assert [p.state for p in lag.partitions] == [LagState.STALLED, LagState.LIVE]


def test_most_partitions_stuck_while_three_move_is_stalled_naming_them() -> None:
    # As measured at 10k msg/s on a slowed broker: 19 s behind, 13 of 16 partitions making no
    # progress while 3 moved. It was called live; the service is its worst partition.
    moving = {4, 9, 15}
    tracker = LagTracker()
    first = [part(p, 10_000, 2_000, ts_ns=T0 - 19 * S) for p in range(16)]
    tracker.update(sample(0, *first))
    later = [part(p, 10_600, 2_500 if p in moving else 2_000, ts_ns=T0 - 19 * S) for p in range(16)]
    lag = tracker.update(sample(1.5, *later))
    assert lag.state == LagState.STALLED
    assert lag.reason.startswith(
        "13 of 16 partitions stalled: 0-3, 5-8, 10-14 (records waiting, applied offset not moving)"
    ), lag.reason
    assert f"{13 * 8_599:,} records" in lag.reason
    assert "offset lag 7,999 -> 8,599" in lag.reason
    stalled = [p.partition for p in lag.partitions if p.state == LagState.STALLED]
    assert set(stalled) == set(range(16)) - moving
    assert {p.state for p in lag.partitions if p.partition in moving} == {LagState.LIVE}


def test_a_stall_ends_when_the_partition_moves_again() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 100, 50), part(1, 100, 99)))
    assert tracker.update(sample(1, part(0, 200, 50), part(1, 200, 199))).state == LagState.STALLED
    lag = tracker.update(sample(2, part(0, 300, 250), part(1, 300, 299)))
    assert (lag.state, lag.reason) == (LagState.LIVE, "49 records behind, applying")


def test_stalled_when_heartbeat_is_stale() -> None:
    tracker = LagTracker(Thresholds(stale_after_s=3.0, down_after_s=5.0))
    tracker.update(sample(0, part(0, 10, 9), heartbeat_age_s=3.5))
    lag = tracker.update(sample(1, part(0, 10, 9), heartbeat_age_s=4.0))
    assert lag.state == LagState.STALLED
    assert "heartbeat" in lag.reason


def test_down_when_heartbeat_is_older_than_down_after() -> None:
    tracker = LagTracker(Thresholds(down_after_s=5.0))
    tracker.update(sample(0, part(0, 10, 9), heartbeat_age_s=5.5))
    lag = tracker.update(sample(1, part(0, 10, 9), heartbeat_age_s=6.5))
    assert lag.state == LagState.DOWN
    assert "no heartbeat for 6.5s" in lag.reason


def test_down_and_never_started_without_meta() -> None:
    lag = LagTracker().update(sample(0, has_meta=False, heartbeat_age_s=None))
    assert lag.state == LagState.DOWN
    assert "never started" in lag.reason
    assert lag.partitions == ()


def test_no_partitions_assigned_is_idle() -> None:
    tracker = LagTracker()
    tracker.update(sample(0))
    assert tracker.update(sample(1)).state == LagState.IDLE


def test_services_are_tracked_apart() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 100, 50), service="order_entry"))
    tracker.update(sample(0, part(0, 100, 99), service="portfolio"))
    a = tracker.update(sample(1, part(0, 200, 50), service="order_entry"))
    b = tracker.update(sample(1, part(0, 200, 199), service="portfolio"))
    assert (a.state, b.state) == (LagState.STALLED, LagState.LIVE)


def test_as_dict_is_json_ready() -> None:
    tracker = LagTracker()
    tracker.update(sample(0, part(0, 100, 50, ts_ns=T0)))
    out = tracker.update(sample(1, part(0, 200, 150, ts_ns=T0))).as_dict()
    assert out["state"] == "live"  # the wire value of LagState.LIVE
    assert type(out["state"]) is str
    assert out["offset_lag"] == 49
    assert out["partitions"][0]["apply_rate"] == pytest.approx(100.0)
    assert set(out) >= {"service", "reason", "heartbeat_age_s", "time_lag_s", "worst_fresh"}


def _row(partition: int, lag: int, state: LagState) -> PartitionLag:
    return PartitionLag(
        partition=partition,
        high_watermark=lag,
        applied_offset=None,
        offset_lag=lag,
        time_lag_s=0.0,
        in_rate=None,
        apply_rate=None,
        state=state,
    )


def _found(*lags: int, stalled: bool = False, quiet: bool = False) -> PartitionPass:
    def state(lag: int) -> LagState:
        if stalled and lag:
            return LagState.STALLED
        return LagState.IDLE if quiet and not lag else LagState.LIVE

    rows = [_row(i, lag, state(lag)) for i, lag in enumerate(lags)]
    stalls = [
        Stall(
            partition=r.partition, applied_offset=None, stuck_s=2.0, first_lag=1, lag=r.offset_lag
        )
        for r in rows
        if r.state is LagState.STALLED
    ]
    return PartitionPass(rows=rows, stalled=stalls, quiet=quiet)


@pytest.mark.parametrize(
    ("heartbeat_age_s", "found", "state", "reason"),
    [
        (None, _found(5), LagState.DOWN, "no heartbeat yet"),
        (9.0, _found(5), LagState.DOWN, "no heartbeat for 9.0s"),
        (4.0, _found(5), LagState.STALLED, "heartbeat 4.0s old"),
        (0.1, _found(5, 0, stalled=True), LagState.STALLED, "1 of 2 partitions stalled: 0 "),
        (0.1, _found(), LagState.IDLE, "no partitions assigned"),
        (0.1, _found(0, 0, quiet=True), LagState.IDLE, "caught up, feed quiet"),
        (0.1, _found(0, 0), LagState.LIVE, "caught up"),
        (0.1, _found(5, 2), LagState.LIVE, "7 records behind, applying"),
    ],
)
def test_service_state_rules_in_order(
    heartbeat_age_s: float | None, found: PartitionPass, state: LagState, reason: str
) -> None:
    got_state, got_reason = service_state(heartbeat_age_s, found, Thresholds())
    assert got_state is state
    assert got_reason.startswith(reason)


def test_the_worst_state_wins() -> None:
    assert worst_state([LagState.IDLE, LagState.LIVE, LagState.IDLE]) is LagState.LIVE
    assert worst_state([LagState.LIVE, LagState.STALLED, LagState.IDLE]) is LagState.STALLED
    assert worst_state([LagState.IDLE]) is LagState.IDLE
    assert worst_state([]) is LagState.IDLE


def test_stalled_reason_names_every_partition_and_the_longest_stuck() -> None:
    stalls = [
        Stall(partition=7, applied_offset=1234, stuck_s=19.0, first_lag=200, lag=3000),
        Stall(partition=0, applied_offset=None, stuck_s=2.0, first_lag=5, lag=6000),
        Stall(partition=1, applied_offset=10, stuck_s=2.0, first_lag=5, lag=500),
    ]
    assert stalled_reason(stalls, 16) == (
        "3 of 16 partitions stalled: 0-1, 7 (records waiting, applied offset not moving), "
        "9,500 records; longest: partition 7 stuck at 1,234 for 19.0s, offset lag 200 -> 3,000"
    )


@pytest.mark.parametrize(
    ("numbers", "text"),
    [([], ""), ([3], "3"), ([0, 1, 2, 5, 7, 8], "0-2, 5, 7-8"), ([9, 1, 2, 1], "1-2, 9")],
)
def test_number_ranges(numbers: list[int], text: str) -> None:
    assert number_ranges(numbers) == text
