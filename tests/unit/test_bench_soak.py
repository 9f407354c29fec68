"""The soak benchmark's pure parts: its flags, the probe's counting, generations, order
outcomes, the flatness verdicts and targets, the report and the plots."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from common.metrics import LatencyHistogram
from common.schema import OrderAccepted, OrderFilled, OrderRejected, Quote
from marketfeed.bench.soak.flat import STALE_QUOTE, is_flat, segments, summarise
from marketfeed.bench.soak.generations import GenerationCounts, GenerationTracker
from marketfeed.bench.soak.orders import UNDECODABLE, count_event
from marketfeed.bench.soak.probe import served
from marketfeed.bench.soak.report import render_markdown
from marketfeed.bench.soak.results import SOAK, WARMUP, Phase, Sample, ServiceLag, SoakResults

# -- the probe's counting ----------------------------------------------------------------------


def _quote(symbol: str, seq: int, *, epoch: int = 7, ts_ns: int = 1_000) -> Quote:
    return Quote(
        symbol=symbol,
        epoch=epoch,
        seq=seq,
        ts_ns=ts_ns,
        bid=10.0,
        ask=10.1,
        bid_size=1,
        ask_size=1,
    )


def test_an_applied_quote_serves_every_quote_of_its_symbol_since_the_last_one() -> None:
    last: dict[str, tuple[int, int]] = {}
    # First sight of a symbol: it serves itself.
    assert served([_quote("AAAA", 5, ts_ns=10)], last) == ([10], [1])
    # Quotes 6..9 were conflated away in a batch: the applied 9 stands for four of them.
    assert served([_quote("AAAA", 9, ts_ns=20), _quote("AAAB", 1, ts_ns=21)], last) == (
        [20, 21],
        [4, 1],
    )
    # A restarted publisher (new epoch) starts again at seq 1: it serves itself.
    assert served([_quote("AAAA", 1, epoch=8, ts_ns=30)], last) == ([30], [1])
    assert last == {"AAAA": (8, 1), "AAAB": (7, 1)}


def test_served_counts_weigh_the_latency_of_a_stall() -> None:
    # One quote applied 2 s late serving 99 conflated ones outweighs 50 on-time quotes.
    h = LatencyHistogram()
    h.record_seconds(np.full(50, 0.002))
    h.record_seconds([2.0], counts=[99])
    assert h.count == 149
    assert h.percentiles().p50_ms > 1000


# -- generations -------------------------------------------------------------------------------


def test_generations_are_counted_from_the_topic_list() -> None:
    tracker = GenerationTracker("run.md.quotes")
    other = ["run.md.trades.g3", "other.md.quotes.g9", "run.md.quotes", "run.md.quotes.g3.x"]
    assert tracker.update(other) is None  # nothing rolled: n/a
    assert tracker.update(["run.md.quotes.g3", "run.md.quotes.g4", *other]) == GenerationCounts(
        current=4, existing=2, rolled=0, deleted=0
    )
    # 5 and 6 came, 3 and 4 went.
    assert tracker.update(["run.md.quotes.g6", "run.md.quotes.g5"]) == GenerationCounts(
        current=6, existing=2, rolled=2, deleted=2
    )
    # Generations made and deleted between two looks (7 and 8) count too.
    assert tracker.update(["run.md.quotes.g9", "run.md.quotes.g10"]) == GenerationCounts(
        current=10, existing=2, rolled=6, deleted=6
    )


# -- order outcomes ----------------------------------------------------------------------------


def test_order_outcomes_count_terminal_events_and_rejection_reasons() -> None:
    counts: Counter[str] = Counter()
    filled = OrderFilled(
        order_id="o1", account="a", symbol="AAAA", side="B", qty=1, price=10.0, ts_ns=1
    )
    stale = OrderRejected(order_id="o2", symbol="AAAA", reason="STALE_QUOTE", text="t", ts_ns=1)
    accepted = OrderAccepted(order_id="o1", account="a", symbol="AAAA", side="B", qty=1, ts_ns=1)
    for value in (filled.encode(), stale.encode(), accepted.encode(), b"\x00junk", None):
        count_event(counts, value)
    assert counts == {
        "order.filled": 1,
        "order.rejected": 1,
        STALE_QUOTE: 1,
        UNDECODABLE: 2,
    }


# -- flatness and targets ----------------------------------------------------------------------


def _lag(time_lag_s: float | None, state: str = "live") -> ServiceLag:
    return ServiceLag(state, "r", 0 if time_lag_s == 0 else 100, time_lag_s, 1000.0, 1000.0)


def _sample(
    t: float,
    *,
    phase: Phase = SOAK,
    broker_mb: float | None = 100.0,
    time_lag_s: float = 0.05,
    orders: dict[str, int] | None = None,
) -> Sample:
    return Sample(
        t=t,
        phase=phase,
        window_s=5.0,
        latency_ms=LatencyHistogram().percentiles().as_dict() | {"count": 10},
        applied=10,
        lag={"order_entry": _lag(time_lag_s), "portfolio": _lag(0.0), "probe": _lag(0.0)},
        rss_mb={"broker": broker_mb, "publisher": 50.0},
        cpu={"broker": 0.5, "publisher": 0.2},
        generations=None,
        orders=orders or {},
    )


def _run(
    latencies_ms: list[float], **overrides: dict[int, object]
) -> tuple[list[Sample], list[bytes]]:
    """Two warm-up samples, then one measured sample per latency (a window of 100 quotes)."""
    samples = [_sample(5.0, phase=WARMUP), _sample(10.0, phase=WARMUP)]
    histograms = []
    for _ in range(2):
        warm = LatencyHistogram()
        warm.record_seconds(np.full(100, 0.5))  # the warm-up is slow, and not judged
        histograms.append(warm.encode())
    for i, ms in enumerate(latencies_ms):
        extra = {k: v[i] for k, v in overrides.items() if i in v}
        samples.append(_sample(15.0 + 5 * i, **extra))  # type: ignore[arg-type]
        h = LatencyHistogram()
        h.record_seconds(np.full(100, ms / 1000))
        histograms.append(h.encode())
    return samples, histograms


def _verdicts(summary: dict[str, object]) -> dict[str, bool | None]:
    targets = summary["targets"]
    assert isinstance(targets, list)
    return {t["target"].split(" ")[0] + " " + t["target"].split(" ")[1]: t["met"] for t in targets}


def test_segments_are_the_first_and_last_share_of_the_measured_samples() -> None:
    samples, _ = _run([1.0] * 20)
    seg = segments(samples, 0.1)
    assert seg is not None
    assert (seg.first, seg.last) == ([2, 3], [20, 21])
    # Never overlapping, at least one sample each; none with fewer than two measured samples.
    seg = segments(_run([1.0] * 3)[0], 0.5)
    assert seg is not None
    assert (seg.first, seg.last) == ([2], [4])
    assert segments(_run([1.0])[0], 0.1) is None


def test_flat_is_within_the_ratio_or_under_the_floor() -> None:
    assert is_flat(10.0, 12.0)
    assert not is_flat(10.0, 12.5)
    assert is_flat(0.0, 0.2, floor=0.25)  # 0 -> 0.2 s of lag: noise under the floor
    assert not is_flat(0.0, 0.4, floor=0.25)
    assert is_flat(None, 1.0) is None


def test_a_flat_soak_meets_its_targets() -> None:
    samples, histograms = _run([3.0] * 10)
    segments_, summary = summarise(samples, histograms, 0.1)
    verdicts = [t["met"] for t in summary["targets"]]
    # Everything met; the orders target is inconclusive: no order was answered.
    assert verdicts == [True] * 7 + [None], summary["targets"]
    # The warm-up's 500 ms is not in any segment.
    assert segments_["measured"]["p50_ms"] == pytest.approx(3.0, rel=0.01)
    assert segments_["first"]["to_s"] <= segments_["last"]["from_s"]


def test_decay_memory_lag_and_stale_quotes_are_caught() -> None:
    samples, histograms = _run(
        [3.0, 3.0, 3.5, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0, 40.0],
        broker_mb={9: 320.0},
        time_lag_s={8: 1.5},
        orders={8: {"order.rejected": 1, STALE_QUOTE: 1}, 9: {"order.rejected": 1, STALE_QUOTE: 1}},
    )
    _, summary = summarise(samples, histograms, 0.1)
    met = {t["target"]: t["met"] for t in summary["targets"]}
    assert met["e2e p50: last segment within 1.2x the first"] is False
    assert met["e2e p50 ≤ 5 ms"] is False
    assert met["broker RSS ≤ 300 MB throughout"] is False
    assert met["order_entry time lag ≤ 1 s in every measured sample"] is False
    assert met["portfolio time lag ≤ 1 s in every measured sample"] is True
    assert met["no order rejected STALE_QUOTE"] is False
    flat = {(r["what"], r["unit"]): r for r in summary["flat"]}
    assert flat[("e2e p50", "ms")]["ratio"] == pytest.approx(13.3, rel=0.02)
    assert flat[("broker", "RSS, MB")]["flat"] is False


def test_a_service_down_in_a_measured_sample_has_not_kept_its_lag_down() -> None:
    samples, histograms = _run([3.0] * 4)
    samples[3].lag["portfolio"] = _lag(0.0, "down")  # a down service reads 0
    _, summary = summarise(samples, histograms, 0.25)
    met = {t["target"]: t for t in summary["targets"]}
    portfolio = met["portfolio time lag ≤ 1 s in every measured sample"]
    assert portfolio["met"] is False
    assert "none read (down, or no reading) in 1" in portfolio["measured"]


def test_stale_quotes_of_the_warm_up_do_not_count() -> None:
    samples, histograms = _run([3.0] * 4)
    stale = {"order.filled": 5, "order.rejected": 2, STALE_QUOTE: 2}
    samples[1].orders = stale  # at the end of the warm-up
    for sample in samples[2:]:
        sample.orders = {**stale, "order.filled": 9}
    _, summary = summarise(samples, histograms, 0.25)
    target = summary["targets"][-1]
    assert target["met"] is True, target
    assert target["measured"].startswith("0 of 4 orders")


def test_without_the_embedded_broker_its_memory_is_not_judged() -> None:
    samples, histograms = _run([3.0] * 4, broker_mb=dict.fromkeys(range(4)))
    for sample in samples:
        sample.rss_mb["broker"] = None
    _, summary = summarise(samples, histograms, 0.25)
    broker = next(t for t in summary["targets"] if t["target"].startswith("broker RSS"))
    assert broker["met"] is None
    assert broker["measured"].startswith("n/a")


# -- the report and the plots ------------------------------------------------------------------


def _results(samples: list[Sample], histograms: list[bytes]) -> SoakResults:
    config = {
        "rate": 10_000.0,
        "symbols": 500,
        "partitions": 16,
        "duration": 300.0,
        "warmup": 10.0,
        "sample_every": 5.0,
        "tradable": 50,
        "orders_rate": 2.0,
        "segment": 0.1,
    }
    results = SoakResults(config=config, environment={"cpus": 2, "broker": "embedded"})
    results.samples = samples
    results.ended, results.elapsed_s = "completed", samples[-1].t
    results.segments, results.summary = summarise(samples, histograms, 0.1)
    return results


def test_the_report_says_how_it_ended_the_targets_and_what_is_not_measured() -> None:
    samples, histograms = _run([3.0] * 10)
    text = render_markdown(_results(samples, histograms), histograms)
    assert "**Ended: completed** after 60 s, 12 samples." in text
    for heading in ("## Targets", "## Did it stay flat?", "## Over time", "## How it is measured"):
        assert heading in text
    assert "| 0-10 (warm-up) |" in text
    assert "Generations: n/a" in text
    samples[-1].generations = GenerationCounts(current=9, existing=2, rolled=5, deleted=4)
    assert "Generations: 9 → 9: 5 rolled, 4 deleted" in render_markdown(
        _results(samples, histograms), histograms
    )


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="no matplotlib")
def test_plots_are_written(tmp_path: Path) -> None:
    from marketfeed.bench.soak.plots import write_plots

    samples, histograms = _run([3.0] * 10)
    # A window in which nothing became readable.
    samples[5].latency_ms = LatencyHistogram().percentiles().as_dict()
    samples[6].lag["order_entry"] = _lag(None, "stalled")
    samples[7].generations = GenerationCounts(current=3, existing=2, rolled=1, deleted=0)
    paths = write_plots(_results(samples, histograms), tmp_path)
    assert [p.name for p in paths] == ["latency.png", "lag.png", "memory.png"]
    assert all(p.stat().st_size > 0 for p in paths)
