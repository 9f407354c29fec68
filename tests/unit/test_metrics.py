"""common.metrics.LatencyHistogram: numpy batches in, HdrHistogram percentiles out."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from common.metrics import LatencyHistogram, Percentiles


def _close(got_ms: float, want_ms: float, resolution_us: int = 10) -> bool:
    """Within the quantisation step plus HdrHistogram's 3 significant digits."""
    return abs(got_ms - want_ms) <= resolution_us / 1000.0 + want_ms * 1e-3


def test_constant_samples() -> None:
    h = LatencyHistogram()
    h.record_seconds(np.full(100, 0.001))
    p = h.percentiles()
    assert h.count == p.count == 100
    for value in (p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms):
        assert _close(value, 1.0)


def test_uniform_samples_percentiles() -> None:
    h = LatencyHistogram()
    h.record_seconds(np.linspace(0.001, 0.100, 100))  # 1, 2, ..., 100 ms
    p = h.percentiles()
    assert p.count == 100
    assert _close(p.p50_ms, 50.0)
    assert _close(p.p90_ms, 90.0)
    assert _close(p.p99_ms, 99.0)
    assert _close(p.max_ms, 100.0)
    assert p.p50_ms <= p.p90_ms <= p.p99_ms <= p.p999_ms <= p.max_ms


def test_shuffled_input_gives_same_percentiles() -> None:
    samples = np.random.default_rng(0).exponential(0.005, 10_000)
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record_seconds(samples)
    b.record_seconds(samples[::-1].copy())
    assert a.percentiles() == b.percentiles()
    assert _close(a.percentiles().p50_ms, float(np.median(samples)) * 1000, resolution_us=20)


def test_samples_quantised_to_resolution() -> None:
    h = LatencyHistogram()
    h.record_seconds([0.0123456])  # 12345.6 us -> 12350 us
    assert _close(h.percentiles().p50_ms, 12.35)
    assert not _close(h.percentiles().p50_ms, 12.30)

    fine = LatencyHistogram(resolution_us=1)
    fine.record_seconds([0.0001234])  # 123.4 us -> 123 us, exact at this magnitude
    assert fine.percentiles().p50_ms == 0.123


def test_zero_and_negative_samples_count_at_the_resolution() -> None:
    h = LatencyHistogram()
    h.record_seconds([0.0, -0.5, 1e-9])
    p = h.percentiles()
    assert p.count == 3
    assert _close(p.max_ms, 0.01)


def test_stall_longer_than_an_hour_is_recorded_at_the_ceiling() -> None:
    h = LatencyHistogram()
    h.record_seconds([7200.0, 0.001])
    p = h.percentiles()
    assert p.count == 2
    assert _close(p.max_ms, 3_600_000.0)


def test_batches_accumulate() -> None:
    h = LatencyHistogram()
    h.record_seconds(np.full(50, 0.002))
    h.record_seconds(np.full(50, 0.004))
    assert h.count == 100
    p = h.percentiles()
    assert _close(p.p50_ms, 2.0)
    assert _close(p.p99_ms, 4.0)


def test_reset_empties() -> None:
    h = LatencyHistogram()
    h.record_seconds(np.linspace(0.001, 0.1, 1000))
    assert h.count == 1000
    h.reset()
    assert h.count == 0
    assert h.percentiles() == Percentiles(
        count=0, p50_ms=0.0, p90_ms=0.0, p99_ms=0.0, p999_ms=0.0, max_ms=0.0
    )
    # Usable again after a reset (warm up, reset, measure).
    h.record_seconds([0.003])
    assert h.count == 1
    assert _close(h.percentiles().max_ms, 3.0)


@pytest.mark.parametrize("empty", [[], np.array([]), np.zeros(0, dtype=np.float64), ()])
def test_empty_batch_is_a_no_op(empty: npt.ArrayLike) -> None:
    h = LatencyHistogram()
    h.record_seconds(empty)
    assert h.count == 0
    h.record_seconds([0.005])
    before = h.percentiles()
    h.record_seconds(empty)
    assert h.percentiles() == before


def test_as_dict() -> None:
    h = LatencyHistogram()
    h.record_seconds([0.001, 0.002])
    d = h.percentiles().as_dict()
    assert set(d) == {"count", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"}
    assert d["count"] == 2
    assert _close(d["max_ms"], 2.0)


def test_weighted_samples_count_as_many() -> None:
    h = LatencyHistogram()
    # One sample standing for 99 others (e.g. quotes superseded by the one that was applied).
    h.record_seconds([0.001, 0.050], counts=[1, 99])
    p = h.percentiles()
    assert p.count == 100
    assert _close(p.p50_ms, 50.0)
    h.record_seconds([0.002], counts=[0])
    assert h.count == 100


def test_encoded_windows_merge_into_one() -> None:
    early, late = LatencyHistogram(), LatencyHistogram()
    early.record_seconds(np.full(50, 0.001))
    late.record_seconds(np.full(50, 0.003))
    merged = LatencyHistogram.decode(early.encode())
    assert merged.percentiles() == early.percentiles()
    merged.add(LatencyHistogram.decode(late.encode()))
    p = merged.percentiles()
    assert p.count == 100
    assert _close(p.p50_ms, 1.0)
    assert _close(p.max_ms, 3.0)


def test_a_caught_up_partition_has_no_time_lag_however_quiet_its_feed() -> None:
    from common.cache.metrics import time_lag_s

    now_ns = 1_000_000 * 10**9
    an_hour_ago_ms = (now_ns // 10**6) - 3_600_000
    # Records wait after the last one applied: the age of that one.
    assert time_lag_s(now_ns, an_hour_ago_ms, offset=10, high=12) == 3600.0
    # Everything the broker had is applied: not behind, however old the last record is.
    assert time_lag_s(now_ns, an_hour_ago_ms, offset=12, high=12) == 0.0
    # No fetch yet, so no high watermark: the age, as before.
    assert time_lag_s(now_ns, an_hour_ago_ms, offset=0, high=None) == 3600.0
    # A clock behind the broker's: never negative.
    assert time_lag_s(now_ns, (now_ns // 10**6) + 5_000, offset=0, high=3) == 0.0
