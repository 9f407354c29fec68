"""``marketfeed bench consumers --smoke`` as CI runs it: every figure is produced and sane.

Never a timed pass/fail: how fast anything was is for the report, not for the test. Run as a
subprocess, as a user runs it, so that it starts (and must stop) its own broker, Redis
servers and worker processes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_bench, running_with

CONSUMERS = {"caching", "naive", "bare"}
PERCENTILES = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]


def _ordered(latency: dict[str, float]) -> bool:
    values = [latency[k] for k in PERCENTILES]
    return values == sorted(values) and values[0] > 0


def _check_consumer(name: str, c: dict[str, Any]) -> None:
    assert c["consumer"] == name
    if not c["measured"]:
        assert c["note"].startswith("retired"), c
        return
    assert c["latency_ms"]["count"] > 0, c
    assert _ordered(c["latency_ms"]), c["latency_ms"]
    assert c["consumed_rate"] > 0
    assert c["feed_rate"] > 0
    assert c["received"] > 0
    assert 0 < c["read_share"] <= 1
    assert 0 < c["partitions"] <= 16
    lag = c["lag"]
    assert 0 <= lag["offset_p99"] <= lag["offset_max"]
    assert 0 <= lag["time_p99_ms"] <= lag["time_max_ms"]
    assert lag["trend"] in {"within the bound", "catching up", "growing", "behind the bound"}
    kept_up = lag["trend"] in {"within the bound", "catching up"}
    if name == "bare":
        assert c["decoded_share"] is None
    else:
        assert 0 < c["decoded_share"] <= 1
    if name == "caching":
        # Only its symbols are decoded: a tenth of them, on its partitions.
        assert c["decoded_share"] < 0.5
        assert 0 <= c["conflation"] < 1
    else:
        assert c["conflation"] is None
    assert c["cpu"] is None or c["cpu"] >= 0
    catch_up = c["catch_up"]
    # Bounded: kept up during the window, and caught up after the pause it was then given.
    if not kept_up:
        assert catch_up is None, c
        assert c["bounded"] is False, c
        return
    assert catch_up is not None, c
    assert c["bounded"] == catch_up["caught_up"], c
    assert catch_up["pause_s"] > 0.5
    assert catch_up["backlog"] > 0
    if catch_up["caught_up"]:
        assert catch_up["time_s"] > 0
        assert catch_up["rate"] > 0
        assert catch_up["multiple"] > 0


@pytest.mark.slow
async def test_smoke_run_produces_every_figure_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, stderr = await run_bench("marketfeed.bench.consumers", out)

    results = json.loads((out / "results.json").read_text())
    # Its workers carry the run's topic prefix on their command line; its servers, its ports.
    environment = results["environment"]
    assert not running_with(environment["topic_prefix"])
    assert not running_with(environment["bootstrap"])
    for url in environment["redis_urls"].values():
        assert not running_with(f"--port {url.rsplit(':', 1)[1].split('/')[0]} ")
    assert set(results) == {"config", "environment", "steps", "get_quote", "summary"}
    assert [s["label"] for s in results["steps"]] == ["500", "2,000"]
    for index, step in enumerate(results["steps"]):
        publisher = step["publisher"]
        assert publisher["achieved_rate"] > 0
        assert publisher["quote_rate"] > 0
        assert publisher["failed"] == 0
        assert _ordered(publisher["lateness_ms"])
        assert step["duration_s"] > 1
        assert set(step["consumers"]) == CONSUMERS
        for name, consumer in step["consumers"].items():
            if index == 0:
                assert consumer["measured"], consumer  # nothing can be retired before step 1
            _check_consumer(name, consumer)
        timeline = step["timeline"]
        assert len(timeline["t"]) == len(timeline["phase"]) > 5
        assert timeline["t"] == sorted(timeline["t"])
        # A consumer retired at an earlier step has no samples in this one.
        ran = {name for name, c in step["consumers"].items() if c["measured"]}
        assert set(timeline["offset_lag"]) == ran
        for name in ran:
            assert len(timeline["offset_lag"][name]) == len(timeline["t"])
        assert "measure" in timeline["phase"]

    get_quote = results["get_quote"]
    for pair in (get_quote["reader"], get_quote["raw_get"]):
        assert 0 < pair["p50_us"] <= pair["p99_us"]
    summary = results["summary"]
    assert set(summary["sustained"]) == CONSUMERS
    assert {t["met"] for t in summary["targets"]} <= {True, False, None}
    assert len(summary["targets"]) == 3

    report = (out / "report.md").read_text()
    assert stdout == report
    for heading in (
        "## Publisher",
        "## Publish → readable",
        "## Lag",
        "## Highest",
        "## get quote",
    ):
        assert heading in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "lag.png").stat().st_size > 0
        assert (out / "latency.png").stat().st_size > 0
    else:
        assert "plots skipped" in stderr
