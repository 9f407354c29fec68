"""Whether a soak stayed flat, and whether it met the targets of issue 10 (no I/O).

The measured run is every sample whose window lies after the warm-up. Its **first** and **last**
segments are its first and last ``--segment`` share of samples (10 %; each at least one sample,
never overlapping). A figure **stayed flat** when its value over the last segment is at most
``TARGET_FLAT`` (1.2) times its value over the first; a figure that is near zero at first is
compared against a floor instead (lag is 0 while a cache is caught up, so a ratio of two
near-zero lags says nothing), given beside it. Latency percentiles of a segment come from its
windows' histograms merged, not from an average of percentiles; other figures are the mean of
the segment's samples.

Targets: e2e p50 and p99 flat; p50 and p99 over the measured run within their bounds; broker
memory within its bound in every sample, warm-up included; each service's time lag within a
second in every measured sample (what ``marketfeed lag`` reads); no order rejected
``STALE_QUOTE`` during the measured run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from common.metrics import LatencyHistogram
from marketfeed.bench.soak.results import SOAK, Sample
from marketfeed.bench.soak.settings import (
    TARGET_BROKER_RSS_MB,
    TARGET_FLAT,
    TARGET_P50_MS,
    TARGET_P99_MS,
    TARGET_TIME_LAG_S,
)

SERVICES = ("order_entry", "portfolio")
STALE_QUOTE = "order.rejected:STALE_QUOTE"

# Below these, "flat" is judged against the floor: noise, not a trend.
FLOORS = {"time lag, s": 0.25, "offset lag, records": 1000.0, "RSS, MB": 5.0, "CPU, cores": 0.05}


@dataclass(frozen=True, slots=True)
class Segments:
    measured: list[int]  # indices of the samples after the warm-up
    first: list[int]
    last: list[int]


def segments(samples: Sequence[Sample], share: float) -> Segments | None:
    """The first and last ``share`` of the measured samples; None with fewer than two."""
    measured = [i for i, s in enumerate(samples) if s.phase == SOAK]
    if len(measured) < 2:
        return None
    k = min(max(1, round(len(measured) * share)), len(measured) // 2)
    return Segments(measured, measured[:k], measured[-k:])


def merged(histograms: Sequence[bytes], indices: Sequence[int]) -> LatencyHistogram:
    total = LatencyHistogram()
    for i in indices:
        total.add(LatencyHistogram.decode(histograms[i]))
    return total


def is_flat(first: float | None, last: float | None, floor: float = 0.0) -> bool | None:
    """Last at most TARGET_FLAT x first (or x the floor, if first is below it)."""
    if first is None or last is None:
        return None
    return last <= TARGET_FLAT * max(first, floor)


def ratio(first: float | None, last: float | None) -> float | None:
    if first is None or last is None or first <= 0:
        return None
    return last / first


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def _row(what: str, unit: str, first: float | None, last: float | None) -> dict[str, Any]:
    floor = FLOORS.get(unit, 0.0)
    return {
        "what": what,
        "unit": unit,
        "first": first,
        "last": last,
        "ratio": ratio(first, last),
        "floor": floor or None,
        "flat": is_flat(first, last, floor),
    }


Pick = Callable[[Sample, str], float | None]


def _series_rows(
    samples: Sequence[Sample], seg: Segments, names: Sequence[str], unit: str, pick: Pick
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        first = _mean([pick(samples[i], name) for i in seg.first])
        last = _mean([pick(samples[i], name) for i in seg.last])
        rows.append(_row(name, unit, first, last))
    return rows


def _lag_of(field: str) -> Pick:
    def pick(sample: Sample, name: str) -> float | None:
        lag = sample.lag.get(name)
        value = getattr(lag, field) if lag is not None else None
        return None if value is None else float(value)

    return pick


def flatness(
    samples: Sequence[Sample], histograms: Sequence[bytes], seg: Segments
) -> list[dict[str, Any]]:
    """First vs last segment of every figure the soak follows."""
    first, last = merged(histograms, seg.first), merged(histograms, seg.last)
    rows = []
    if first.count and last.count:
        a, b = first.percentiles(), last.percentiles()
        rows += [
            _row("e2e p50", "ms", a.p50_ms, b.p50_ms),
            _row("e2e p99", "ms", a.p99_ms, b.p99_ms),
        ]
    services = sorted({name for s in samples for name in s.lag})
    rows += _series_rows(samples, seg, services, "time lag, s", _lag_of("time_lag_s"))
    rows += _series_rows(samples, seg, services, "offset lag, records", _lag_of("offset_lag"))
    processes = sorted({name for s in samples for name in s.rss_mb})
    rows += _series_rows(samples, seg, processes, "RSS, MB", lambda s, n: s.rss_mb.get(n))
    rows += _series_rows(samples, seg, processes, "CPU, cores", lambda s, n: s.cpu.get(n))
    return rows


def _target(name: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": name, "measured": measured, "met": met}


def _flat_target(rows: list[dict[str, Any]], what: str, first_s: str) -> dict[str, Any]:
    name = f"e2e {what.removeprefix('e2e ')}: last segment within {TARGET_FLAT:g}x the first"
    row = next((r for r in rows if r["what"] == what), None)
    if row is None:
        return _target(name, "no quote became readable in a segment", None)
    shown = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "—"
    measured = f"{first_s}: {row['first']:.2f} ms → {row['last']:.2f} ms ({shown})"
    return _target(name, measured, row["flat"])


def _latency_targets(whole: LatencyHistogram) -> list[dict[str, Any]]:
    if not whole.count:
        return [
            _target(f"e2e p50 ≤ {TARGET_P50_MS:g} ms", "no quote became readable", None),
            _target(f"e2e p99 ≤ {TARGET_P99_MS:g} ms", "no quote became readable", None),
        ]
    p = whole.percentiles()
    over = f"over the measured run ({p.count:,} quotes)"
    return [
        _target(
            f"e2e p50 ≤ {TARGET_P50_MS:g} ms",
            f"{p.p50_ms:.2f} ms {over}",
            p.p50_ms <= TARGET_P50_MS,
        ),
        _target(
            f"e2e p99 ≤ {TARGET_P99_MS:g} ms",
            f"{p.p99_ms:.2f} ms {over}",
            p.p99_ms <= TARGET_P99_MS,
        ),
    ]


def _broker_target(samples: Sequence[Sample]) -> dict[str, Any]:
    name = f"broker RSS ≤ {TARGET_BROKER_RSS_MB:g} MB throughout"
    readings = [(s.rss_mb["broker"], s.t) for s in samples if s.rss_mb.get("broker") is not None]
    if not readings:
        return _target(name, "n/a: not the embedded broker (its memory is not ours to read)", None)
    peak, at = max(readings, key=lambda r: r[0] or 0.0)
    assert peak is not None
    measured = f"max {peak:,.0f} MB at {at:,.0f} s; {readings[0][0]:,.0f} MB at first"
    return _target(name, measured, peak <= TARGET_BROKER_RSS_MB)


def _time_lag_target(samples: Sequence[Sample], seg: Segments, service: str) -> dict[str, Any]:
    name = f"{service} time lag ≤ {TARGET_TIME_LAG_S:g} s in every measured sample"
    lags = [samples[i].lag.get(service) for i in seg.measured]
    if all(lag is None for lag in lags):
        return _target(name, "not sampled", None)
    # A service that is down has no lag to read (it reads 0): it is not keeping up either.
    known = sorted(
        lag.time_lag_s
        for lag in lags
        if lag is not None and lag.time_lag_s is not None and lag.state != "down"
    )
    unknown = len(lags) - len(known)
    states = sorted({lag.state for lag in lags if lag is not None and lag.state != "live"})
    if not known:
        return _target(name, f"no time lag read in all {unknown} samples", False)
    worst = known[-1]
    measured = (
        f"max {worst:.2f} s, median {statistics.median(known):.3f} s over {len(lags)} samples"
        + (f"; none read (down, or no reading) in {unknown}" if unknown else "")
        + (f"; states seen besides live: {', '.join(states)}" if states else "")
    )
    return _target(name, measured, worst <= TARGET_TIME_LAG_S and not unknown)


def orders_during(samples: Sequence[Sample], seg: Segments) -> dict[str, int]:
    """Terminal order events during the measured run (the counts are cumulative)."""
    before = samples[seg.measured[0] - 1].orders if seg.measured[0] > 0 else {}
    end = samples[seg.measured[-1]].orders
    return {k: v - before.get(k, 0) for k, v in end.items() if v - before.get(k, 0)}


def _stale_target(during: dict[str, int]) -> dict[str, Any]:
    answered = sum(during.get(k, 0) for k in ("order.filled", "order.cancelled", "order.rejected"))
    stale = during.get(STALE_QUOTE, 0)
    measured = f"{stale} of {answered:,} orders answered during the measured run"
    return _target("no order rejected STALE_QUOTE", measured, stale == 0 if answered else None)


def _span(samples: Sequence[Sample], idx: Sequence[int]) -> str:
    """``"30-60 s"``: from the start of the first window to the end of the last."""
    start = samples[idx[0]].start
    return f"{start:,.0f}-{samples[idx[-1]].t:,.0f} s"


def summarise(
    samples: Sequence[Sample], histograms: Sequence[bytes], share: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(latency of the segments, summary with the flatness rows and the targets)."""
    seg = segments(samples, share)
    if seg is None:
        return {}, {"note": "fewer than two samples after the warm-up: nothing to compare"}
    span = f"{len(seg.first)} samples each"
    first_s = f"first {_span(samples, seg.first)} vs last {_span(samples, seg.last)}"
    rows = flatness(samples, histograms, seg)
    whole = merged(histograms, seg.measured)
    during = orders_during(samples, seg)
    targets = [
        _flat_target(rows, "e2e p50", first_s),
        _flat_target(rows, "e2e p99", first_s),
        *_latency_targets(whole),
        _broker_target(samples),
        *(_time_lag_target(samples, seg, s) for s in SERVICES),
        _stale_target(during),
    ]
    latency = {
        name: {
            "from_s": samples[idx[0]].start,
            "to_s": samples[idx[-1]].t,
            "samples": len(idx),
            **merged(histograms, idx).percentiles().as_dict(),
        }
        for name, idx in (("first", seg.first), ("last", seg.last), ("measured", seg.measured))
    }
    summary = {
        "segments": span,
        "targets": targets,
        "flat": rows,
        "orders_during": during,
        "generations": asdict(gens) if (gens := samples[-1].generations) else None,
    }
    return latency, summary
