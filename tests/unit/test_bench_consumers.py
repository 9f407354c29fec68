"""The consumer benchmark's pure parts: its flags, lag verdicts, parsing and report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from common.config import build
from common.errors import ConfigError
from marketfeed.bench.consumers import command
from marketfeed.bench.consumers.getquote import parse_redis_benchmark_csv
from marketfeed.bench.consumers.lag import Lag
from marketfeed.bench.consumers.plots import rate_positions, spans
from marketfeed.bench.consumers.report import render_markdown
from marketfeed.bench.consumers.results import (
    CatchUp,
    ConsumerStep,
    GetQuote,
    LatencyPair,
    PublisherStep,
    Results,
    Step,
    Timeline,
)
from marketfeed.bench.consumers.roles.base import WorkerParams
from marketfeed.bench.consumers.roles.caching import CachingRole
from marketfeed.bench.consumers.runner import _consumer_params
from marketfeed.bench.consumers.settings import ConsumersBenchConfig
from marketfeed.bench.consumers.summary import summarise
from marketfeed.bench.consumers.verdicts import (
    Trend,
    bounded,
    caught_up_level,
    lag_stats,
    read_share,
    trend,
)
from marketfeed.bench.consumers.worker import ROLE_TYPES
from marketfeed.bench.core.clients import feed_fields
from marketfeed.bench.core.settings import parse_rates


def _lags(offsets: list[int]) -> list[Lag]:
    return [Lag(offset=o, time_ms=o / 10, done=0, published=0) for o in offsets]


def test_rates_parse_numbers_and_max() -> None:
    assert parse_rates(["1000", " max ", "2_500", "1e4"]) == (1000.0, None, 2500.0, 10000.0)


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "inf", "nan", ""])
def test_a_bad_rate_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="--rates"):
        parse_rates([bad])


def test_an_out_dir_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert command.main(["--out", str(blocker / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--out" in err[0]
    assert "cannot write" in err[0]


def test_interest_one_is_every_symbol_and_smoke_shortens_the_run() -> None:
    config = build(ConsumersBenchConfig, {"interest": "1", "symbols": "300"}, environ={})
    assert config.interest_count == 300
    smoke = build(ConsumersBenchConfig, {"smoke": True, "rates": "1,2,3"}, environ={}).effective()
    assert smoke.rates == ("500", "2000")
    assert smoke.symbols == 200
    assert smoke.plan().rates == (500.0, 2000.0)


def test_a_steady_lag_kept_up() -> None:
    stats = lag_stats(_lags([100, 120, 90, 110, 100, 130, 95, 105, 100, 115]), 10_000, 1.0)
    assert stats.trend is Trend.WITHIN
    assert stats.kept_up
    assert stats.offset_max == 130
    assert stats.start_s == pytest.approx(0.011, abs=0.002)


def test_a_growing_lag_did_not_keep_up_even_below_the_bound() -> None:
    # 0.07 s of feed more every sample: 0.7 s over the window, more than half of 1 s.
    stats = lag_stats(_lags([700 * i for i in range(11)]), 10_000, 1.0)
    assert stats.end_s < 1.0
    assert stats.trend is Trend.GROWING
    assert not stats.kept_up


def test_a_lag_above_the_bound_did_not_keep_up_even_if_flat() -> None:
    stats = lag_stats(_lags([20_000] * 10), 10_000, 1.0)
    assert stats.trend is Trend.BEHIND
    assert not stats.kept_up


def test_a_falling_lag_is_catching_up_and_kept_up_even_above_the_bound() -> None:
    # Measured: the naive consumer went 2.71 -> 1.42 s behind over a step and was called
    # unbounded while its lag was falling.
    stats = lag_stats(_lags([27_100] * 3 + [20_000] * 4 + [14_200] * 3), 10_000, 1.0)
    assert (stats.start_s, stats.end_s) == pytest.approx((2.71, 1.42))
    assert stats.trend is Trend.CATCHING_UP
    assert stats.kept_up


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.2, 0.6, Trend.WITHIN),  # grew by 0.4 s: less than half the bound
        (0.2, 0.71, Trend.GROWING),
        (1.2, 1.0, Trend.WITHIN),  # fell by less than half, ends within
        (3.0, 2.6, Trend.BEHIND),  # fell by less than half, ends beyond
        (3.0, 2.5, Trend.CATCHING_UP),
    ],
)
def test_trend_against_a_one_second_bound(start: float, end: float, expected: Trend) -> None:
    assert trend(start, end, 1.0) is expected


def test_bounded_means_kept_up_and_caught_up_if_paused() -> None:
    kept_up = lag_stats(_lags([100] * 5), 10_000, 1.0)
    fell_behind = lag_stats(_lags([100, 5000, 10_000, 20_000, 30_000]), 10_000, 1.0)
    assert bounded(kept_up, None) is True  # not paused
    assert bounded(kept_up, True) is True
    # Measured: after the pause at 10k, caching and bare were "not caught up" yet "bounded".
    assert bounded(kept_up, False) is False
    assert bounded(fell_behind, None) is False
    assert bounded(None, None) is None  # not measured


def test_the_read_share_is_a_share() -> None:
    assert read_share(800, 1000) == 0.8
    assert read_share(1000, 1000) == 1.0
    # Watermarks read a moment apart can never make it more than all of the topic.
    assert read_share(1010, 1000) == 1.0
    assert read_share(0, 0) is None


def test_caught_up_means_back_near_the_steady_level() -> None:
    assert caught_up_level(_lags([1000] * 5), 10_000) == 1000
    assert caught_up_level(_lags([0] * 5), 10_000) == 1000  # 100 ms of feed
    assert caught_up_level(_lags([0] * 5), 10) == 50


def test_redis_benchmark_csv_with_and_without_latency_columns() -> None:
    redis7 = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
        '"p99_latency_ms","max_latency_ms"\n"GET","31000.00","0.030","0.016","0.031","0.039",'
        '"0.063","0.455"\n'
    )
    pair = parse_redis_benchmark_csv(redis7)
    assert pair is not None
    assert pair.p50_us == pytest.approx(31)
    assert pair.p99_us == pytest.approx(63)
    assert parse_redis_benchmark_csv('"test","rps"\n"GET","31000.00"\n') is None


def test_phases_are_found_in_a_timeline() -> None:
    timeline = Timeline(
        t=[0, 1, 2, 3, 4, 5, 6],
        phase=["measure", "pause", "pause", "catch-up", "catch-up", "pause", "pause"],
    )
    assert spans(timeline, "pause") == [(1, 3), (5, 6)]
    assert spans(timeline, "measure") == [(0, 1)]


def test_max_is_set_apart_and_labelled_with_the_achieved_rate() -> None:
    steps = [_step(1000, {}), _step(10_000, {}), _step(None, {}), _step(50_000, {})]
    positions, labels = rate_positions(steps)
    assert positions == [0.0, 1.0, pytest.approx(3.4), 2.0]
    assert labels[2] == "max\n(80,000\nachieved)"
    assert labels[:2] == ["1,000", "10,000"]
    assert rate_positions([_step(None, {})])[0] == [0.0]


def _latency(p50: float) -> dict[str, float]:
    keys = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]
    return {"count": 100, **{key: (i + 1) * p50 for i, key in enumerate(keys)}}


def _consumer(name: str, *, kept_up: bool, p50: float, catch_up: float | None) -> ConsumerStep:
    stats = lag_stats(
        _lags([100] * 5 if kept_up else [100, 5000, 10_000, 20_000, 30_000]), 10_000, 1
    )
    done = (
        None
        if catch_up is None
        else CatchUp(10.0, 90_000, True, 10 / catch_up, 9000 * catch_up, catch_up, 9000)
    )
    return ConsumerStep(
        consumer=name,
        measured=True,
        consumed_rate=9000,
        feed_rate=9000,
        latency_ms=_latency(p50),
        lag=stats,
        received=90_000,
        decoded=9000,
        applied=8000,
        conflated=1000,
        partitions=16,
        read_share=1.0,
        decoded_share=0.1,
        conflation=0.11 if name == "caching" else None,
        cpu=0.3,
        catch_up=done,
        bounded=bounded(stats, None if done is None else done.caught_up),
    )


def _step(rate: float | None, members: dict[str, ConsumerStep]) -> Step:
    return Step(
        label="max" if rate is None else f"{rate:,.0f}",
        target_rate=rate,
        duration_s=10,
        publisher=PublisherStep(
            rate or 80_000, 0.9 * (rate or 80_000), _latency(0.5) if rate else None, 0, 0.9
        ),
        servers_cpu={"broker": 0.4},
        consumers=members,
        timeline=Timeline(),
    )


def _results(consumers: list[str]) -> Results:
    return Results(
        config={
            "consumers": consumers,
            "symbols": 1000,
            "partitions": 16,
            "interest": 0.1,
            "duration": 10,
            "warmup": 2,
            "pause": 10,
            "lag_bound": 1.0,
            "fetch_max_wait_ms": 5,
            "cycle_ms": 10.0,
        },
        environment={"cpus": 2, "broker": "embedded"},
    )


def test_the_report_states_ratios_and_targets_from_the_steps() -> None:
    results = _results(["caching", "naive", "bare"])
    retired = ConsumerStep(consumer="naive", measured=False, note="retired: lag unbounded")
    everyone = ("caching", "naive", "bare")
    at_1k = {n: _consumer(n, kept_up=True, p50=2, catch_up=6) for n in everyone}
    at_10k = {
        "caching": _consumer("caching", kept_up=True, p50=2.5, catch_up=8),
        "naive": _consumer("naive", kept_up=False, p50=900, catch_up=None),
        "bare": _consumer("bare", kept_up=True, p50=1, catch_up=9),
    }
    at_50k = {
        "caching": _consumer("caching", kept_up=True, p50=4, catch_up=5.5),
        "naive": retired,
        "bare": _consumer("bare", kept_up=True, p50=1, catch_up=7),
    }
    results.steps = [_step(1000, at_1k), _step(10_000, at_10k), _step(50_000, at_50k)]
    results.get_quote = GetQuote("AAAA", 100, LatencyPair(80, 200), LatencyPair(60, 150), None, "n")
    results.summary = summarise(results)

    sustained = results.summary["sustained"]
    assert sustained["naive"]["step"] == "1,000"
    assert sustained["naive"]["first_unbounded"] == "10,000"
    assert sustained["caching"]["lower_bound"]
    ratio = results.summary["ratios"]["caching_vs_naive"]
    assert ratio["value"] == pytest.approx(50)
    assert ratio["at_least"]
    verdicts = [t["met"] for t in results.summary["targets"]]
    assert verdicts == [True, True, True]

    text = render_markdown(results)
    assert "retired: lag unbounded" in text
    assert "NO (growing: 0.01 → 3.00 s)" in text
    assert "yes (within the bound: 0.01 → 0.01 s)" in text
    assert "- **kept up** (over the 10 s measurement window" in text
    assert "within 30 s of the resume" in text
    assert ">= 50.0x" in text
    assert "unthrottled" not in text
    assert "1.33x" in text  # get quote p50 over the raw GET's


def _paused(name: str, catch_up_rate: float, cpu: float, p50: float) -> ConsumerStep:
    c = _consumer(name, kept_up=True, p50=p50, catch_up=catch_up_rate / 9000)
    c.cpu = cpu
    return c


def test_the_report_sets_the_verifying_cache_beside_the_one_that_verifies_nothing() -> None:
    results = _results(["caching", "caching-unsigned"])
    at_2k = {
        "caching": _paused("caching", 45_000, 0.36, 2),
        "caching-unsigned": _paused("caching-unsigned", 50_000, 0.30, 1.6),
    }
    unsigned_retired = ConsumerStep("caching-unsigned", measured=False, note="retired: x")
    at_5k = {"caching": _paused("caching", 40_000, 0.5, 3), "caching-unsigned": unsigned_retired}
    results.steps = [_step(2000, at_2k), _step(5000, at_5k)]
    results.summary = summarise(results)

    # Only where both were measured.
    [row] = results.summary["signing"]
    assert row["step"] == "2,000"
    assert row["catch_up_rate"] == {
        "verifying": pytest.approx(45_000),
        "unsigned": pytest.approx(50_000),
        "ratio": pytest.approx(0.9),
    }
    # CPU per record done: 0.36 cores over 9,000 records/s is 40 µs a record.
    assert row["cpu_us_per_record"]["verifying"] == pytest.approx(40)
    assert row["cpu_us_per_record"]["ratio"] == pytest.approx(1.2)
    assert row["p50_ms"]["ratio"] == pytest.approx(1.25)
    catch_up = results.summary["ratios"]["catch_up_caching_vs_caching-unsigned"]
    assert catch_up == {"step": "2,000", "value": pytest.approx(0.9)}

    text = render_markdown(results)
    assert "## Signature verification: caching (verifying) ÷ caching-unsigned" in text
    assert "45,000 / 50,000 | 0.90x" in text
    assert "40.0 / 33.3 | 1.20x" in text
    assert "0.9x at 2,000" in text  # the summary's catch-up column


def test_a_run_without_both_caches_has_no_signing_section() -> None:
    results = _results(["caching", "bare"])
    results.steps = [
        _step(2000, {n: _paused(n, 45_000, 0.3, 2) for n in ("caching", "bare")}),
    ]
    results.summary = summarise(results)
    assert results.summary["signing"] == []
    assert "Signature verification" not in render_markdown(results)


def test_the_unsigned_cache_gets_no_key_and_topics_of_its_own() -> None:
    base = build(WorkerParams, {}, environ={})
    base = replace(base, **feed_fields())
    urls = {"caching": "redis://h:1/0", "caching-unsigned": "redis://h:2/0"}
    verifying = _consumer_params(base, "caching", urls, "p.")
    unsigned = _consumer_params(base, "caching-unsigned", urls, "p.")
    assert verifying.feed_key is not None
    assert not verifying.insecure_unsigned_feed
    assert unsigned.feed_key is None
    assert unsigned.insecure_unsigned_feed
    assert (unsigned.redis_url, unsigned.redis_prefix) == ("redis://h:2/0", "p.caching-unsigned:")
    # Its own snapshot-reply and dead-letter topics, not the verifying one's.
    roles = {ROLE_TYPES[name](unsigned) for name in ("caching", "caching-unsigned")}
    assert len({type(role).SERVICE for role in roles if isinstance(role, CachingRole)}) == 2
