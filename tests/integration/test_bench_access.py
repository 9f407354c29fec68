"""``marketfeed bench access --smoke`` as CI runs it: every figure is produced and sane.

Never a timed pass/fail. Run as a subprocess, as a user runs it, so that it starts (and must
stop) its own broker, Redis, publisher, caching consumer, API and order_entry.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.helpers import run_bench, running_with

PERCENTILES = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]


def _ordered(latency: dict[str, float]) -> bool:
    values = [latency[k] for k in PERCENTILES]
    return values == sorted(values) and values[0] > 0


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_smoke_run_produces_every_figure_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, _ = await run_bench("marketfeed.bench.access", out)

    results = json.loads((out / "results.json").read_text())
    environment = results["environment"]
    assert not running_with(environment["topic_prefix"])
    assert not running_with(environment["bootstrap"])
    assert [p["path"] for p in results["paths"]] == ["library", "kafka", "http"]
    for path in results["paths"]:
        assert path["failed"] == 0, path
        assert path["latency"]["count"] == path["reads"] == 30
        assert _ordered(path["latency"]), path
        assert path["seconds"] > 0
    cache = results["cache"]
    assert cache["feed_msgs_per_s"] > 0
    assert cache["cores"] is None or cache["cores"] > 0
    assert cache["rss_mb"] is None or cache["rss_mb"] > 1
    assert [o["path"] for o in results["orders"]] == ["kafka", "http"]
    for order in results["orders"]:
        assert order["outcomes"] == {"filled": 3}, order
        assert _ordered(order["latency"])
    assert [f["clients"] for f in results["fanout"]] == [2, 4]
    for step in results["fanout"]:
        assert step["events"] > 0, step
        assert step["api_cores"] is None or step["api_cores"] >= 0

    report = (out / "report.md").read_text()
    assert stdout == report
    for heading in ("## A quote", "## Orders", "## SSE fan-out"):
        assert heading in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "access.png").stat().st_size > 0
