"""``marketfeed bench orders --smoke`` as CI runs it: every figure is produced and sane.

Never a timed pass/fail: how fast anything was is for the report, not for the test. Run as a
subprocess, as a user runs it, so that it starts (and must stop) its own broker, Redis server,
publisher, order_entry processes and echo baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketfeed.bench.orders import command
from tests.helpers import bench, communicate, run_bench, running_with

PERCENTILES = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]
TARGETS = {"order_entry", "echo"}
OUTCOMES = {"order.filled", "order.cancelled", "order.rejected"}


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _check_target(name: str, t: dict[str, Any]) -> None:
    assert t["target"] == name
    assert t["window_s"] > 0.5
    assert t["sent"] > 0
    assert 0 < t["answered"] <= t["sent"]
    assert t["answered"] + t["unanswered"] == t["sent"]
    assert t["send_failed"] == 0
    assert t["achieved_rate"] > 0
    assert set(t["outcomes"]) <= OUTCOMES
    assert sum(t["outcomes"].values()) == t["answered"]
    assert sum(t["reject_reasons"].values()) == t["outcomes"].get("order.rejected", 0)
    latency = t["latency_ms"]
    assert latency["count"] == t["sent"]
    values = [latency[k] for k in PERCENTILES]
    assert values == sorted(values), latency
    assert values[0] > 0
    assert t["latency_lower_bound"] == (t["unanswered"] > 0)
    assert t["quote_rate"] > 0
    # order_entry's quote cache, behind the feed at the end of the window (whichever target).
    assert t["cache_lag_records"] >= 0
    assert t["cache_lag_s"] >= 0
    for cores in t["cpu"].values():
        assert cores is None or cores >= 0
    if name == "echo":
        assert t["outcomes"].get("order.filled") == t["answered"]


@pytest.mark.slow
async def test_smoke_run_produces_every_figure_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, _ = await run_bench("marketfeed.bench.orders", out)

    results = json.loads((out / "results.json").read_text())
    environment = results["environment"]
    # Its children carry the run's topic prefix on their command line; its servers, its ports.
    assert not running_with(environment["topic_prefix"])
    assert not running_with(environment["bootstrap"])
    redis_port = environment["redis_url"].rsplit(":", 1)[1].split("/")[0]
    assert not running_with(f"--port {redis_port} ")
    assert set(results) == {"config", "environment", "join", "steps", "notes"}

    join = results["join"]
    first = join["first"]
    assert first["spawn_to_fill_s"] > 0
    assert 0 < first["spawn_to_assigned_s"] <= first["spawn_to_fill_s"]
    assert first["assigned_to_warm_s"] >= 0
    assert first["partitions"] == 16
    second = join["second"]
    assert second["method"] == "orders:meta", second
    two = second["process"]
    assert two["spawn_to_fill_s"] > 0
    assert 0 < two["spawn_to_assigned_s"] <= two["spawn_to_fill_s"]
    assert two["assigned_to_warm_s"] >= 0
    assert 0 < two["partitions"] < 16
    assert second["rebalanced_s"] > 0
    assert second["usual_ms"] > 0
    assert second["held_max_ms"] > 0
    assert second["takeover_s"] > 0
    assert second["takeover_fill_s"] > 0
    assert join["later_fill_s"] == []  # --smoke runs every step on the join phase's topics
    assert join["echo_first_answer_s"]
    assert all(_positive(s) for s in join["echo_first_answer_s"])

    assert [s["label"] for s in results["steps"]] == ["20", "max"]
    for step in results["steps"]:
        assert set(step["targets"]) == TARGETS
        for name, target in step["targets"].items():
            _check_target(name, target)
        assert all(_positive(r) for r in step["ratios"].values()), step["ratios"]

    report = stdout
    for heading in ("## Join and warm", "## Rate steps", "## order_entry / echo baseline"):
        assert heading in report
    assert "orders:meta" in report


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--order-rates", "100,fast"), ("--tradable", "0"), ("--duration", "-1")],
)
async def test_bad_flag_is_one_line_and_exit_2(flag: str, value: str) -> None:
    proc = await bench("marketfeed.bench.orders", flag, value)
    stdout, stderr = await communicate(proc)
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{command.PROG}: {flag}=")
    assert not stdout
