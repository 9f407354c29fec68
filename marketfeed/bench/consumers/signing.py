"""What verifying the feed's signatures costs the cache: ``caching`` beside ``caching-unsigned``.

Both are the project's CachingConsumer on the same signed feed, in the same steps, paused and
resumed together; one verifies the HMAC of the quote it is about to apply for each symbol of a
batch, the other has no key (``--insecure-unsigned-feed``) and verifies nothing. Per step:

- catch-up rate, records/s done while draining the backlog of the pause: the throughput
  when the consumer, not the feed, is the limit; the ratio verifying ÷ unsigned is the
  figure of issue 12 (below 1: verifying is slower);
- CPU per record done over the measurement window (CPU cores / records done per second);
- publish -> readable latency, p50 and p99.
"""

from __future__ import annotations

from typing import Any

from marketfeed.bench.consumers.results import ConsumerStep, Step
from marketfeed.bench.consumers.settings import CACHING, CACHING_UNSIGNED
from marketfeed.bench.core.report import DASH, shown, table


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def _catch_up_rate(c: ConsumerStep) -> float | None:
    return c.catch_up.rate if c.catch_up is not None and c.catch_up.caught_up else None


def _cpu_us_per_record(c: ConsumerStep) -> float | None:
    return c.cpu / c.consumed_rate * 1e6 if c.cpu is not None and c.consumed_rate > 0 else None


def compare(steps: list[Step]) -> list[dict[str, Any]]:
    """Per step where both were measured: each one's figures and the ratios verifying ÷ unsigned
    (empty when the run did not have both)."""
    rows = []
    for step in steps:
        verifying, unsigned = step.consumers.get(CACHING), step.consumers.get(CACHING_UNSIGNED)
        if not (verifying and unsigned and verifying.measured and unsigned.measured):
            continue
        figures = {
            "catch_up_rate": (_catch_up_rate(verifying), _catch_up_rate(unsigned)),
            "cpu_us_per_record": (_cpu_us_per_record(verifying), _cpu_us_per_record(unsigned)),
            "p50_ms": (verifying.latency_ms.get("p50_ms"), unsigned.latency_ms.get("p50_ms")),
            "p99_ms": (verifying.latency_ms.get("p99_ms"), unsigned.latency_ms.get("p99_ms")),
        }
        rows.append(
            {
                "step": step.label,
                **{
                    name: {"verifying": a, "unsigned": b, "ratio": _ratio(a, b)}
                    for name, (a, b) in figures.items()
                },
            }
        )
    return rows


def _cells(entry: dict[str, Any], spec: str) -> list[str]:
    ratio = entry["ratio"]
    return [
        f"{shown(entry['verifying'], spec)} / {shown(entry['unsigned'], spec)}",
        DASH if ratio is None else f"{ratio:.2f}x",
    ]


def render(rows: list[dict[str, Any]]) -> str:
    """The report's section (empty without both consumers)."""
    if not rows:
        return ""
    body = [
        [
            row["step"],
            *_cells(row["catch_up_rate"], ",.0f"),
            *_cells(row["cpu_us_per_record"], ".1f"),
            *_cells(row["p50_ms"], ".2f"),
            *_cells(row["p99_ms"], ".2f"),
        ]
        for row in rows
    ]
    headers = ["rate"]
    for what in ("catch-up rec/s", "CPU µs/record", "p50 ms", "p99 ms"):
        headers += [f"{what} verifying / unsigned", "ratio"]
    return (
        table(headers, body)
        + "\n\nThe same CachingConsumer on the same signed feed: caching verifies the HMAC of "
        "the quote it applies per symbol and batch, caching-unsigned has no key and verifies "
        "nothing. Catch-up rate: records/s done after the pause (both resumed together); CPU "
        "per record done over the window. What verifying costs shows as a catch-up ratio "
        "below 1.00x and CPU and latency ratios above it, at every step; a ratio that changes "
        "side from step to step is the machine's noise."
    )
