"""``marketfeed bench soak --smoke`` as CI runs it: every figure produced and sane, nothing left.

Never a timed pass/fail: how fast anything was is for the report. Run as a subprocess, as a user
runs it, so that it starts (and must stop) its own broker, Redis servers and the whole stack.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import bench, running_with

CACHES = {"order_entry", "portfolio", "probe"}
CHILDREN = {"publisher", "order_entry", "portfolio", "order_flow"}
PERCENTILES = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]


async def _soak(out: Path, *flags: str) -> asyncio.subprocess.Process:
    return await bench("marketfeed.bench.soak", "--smoke", "--out", str(out), *flags)


def _nothing_left(results: dict[str, Any]) -> None:
    # The children carry the run's topic prefix on their command line; the servers, their ports.
    environment = results["environment"]
    assert not running_with(environment["topic_prefix"])
    assert not running_with(environment["bootstrap"])
    for url in environment["redis_urls"].values():
        assert not running_with(f"--port {url.rsplit(':', 1)[1].split('/')[0]} ")


def _check_sample(sample: dict[str, Any]) -> None:
    assert sample["phase"] in {"warmup", "soak"}
    assert sample["window_s"] > 0
    latency = sample["latency_ms"]
    if latency["count"]:
        values = [latency[k] for k in PERCENTILES]
        assert values == sorted(values)
        assert values[0] > 0
        # Each quote applied serves at least itself.
        assert latency["count"] >= sample["applied"] > 0
    assert set(sample["lag"]) == CACHES
    for lag in sample["lag"].values():
        assert lag["state"] in {"live", "idle", "stalled", "down", "unavailable"}
        assert lag["time_lag_s"] is None or lag["time_lag_s"] >= 0
        assert lag["offset_lag"] is None or lag["offset_lag"] >= 0
    # Every process of the stack, the embedded servers and this one, has memory; CPU >= 0.
    assert set(sample["rss_mb"]) >= CHILDREN | {"broker", "soak (probe)"}
    assert all(mb is not None and mb > 0 for mb in sample["rss_mb"].values()), sample["rss_mb"]
    assert all(c is None or c >= 0 for c in sample["cpu"].values())
    assert all(isinstance(n, int) and n >= 0 for n in sample["orders"].values())


@pytest.mark.slow
async def test_smoke_run_produces_every_figure_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = await _soak(out)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, stderr.decode()[-3000:]

    results = json.loads((out / "results.json").read_text())
    _nothing_left(results)
    assert results["ended"] == "completed"
    samples = results["samples"]
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    assert {s["phase"] for s in samples} == {"warmup", "soak"}
    assert sum(1 for s in samples if s["phase"] == "soak") >= 2
    for sample in samples:
        _check_sample(sample)
    # The probe saw quotes become readable after the warm-up.
    assert results["segments"]["measured"]["count"] > 0
    assert results["segments"]["first"]["to_s"] <= results["segments"]["last"]["from_s"]
    targets = results["summary"]["targets"]
    assert len(targets) == 8
    assert {t["met"] for t in targets} <= {True, False, None}
    # The embedded broker's memory is ours to read: that target is decided.
    broker = next(t for t in targets if t["target"].startswith("broker RSS"))
    assert broker["met"] is not None
    assert results["summary"]["flat"]

    report = (out / "report.md").read_text()
    assert stdout.decode() == report
    for heading in ("## Targets", "## Did it stay flat?", "## Over time", "## How it is measured"):
        assert heading in report
    assert (out / "logs" / "publisher.log").stat().st_size > 0
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("latency.png", "lag.png", "memory.png"):
            assert (out / name).stat().st_size > 0
    else:
        assert "plots skipped" in stderr.decode()


@pytest.mark.slow
async def test_ctrl_c_stops_everything_and_still_writes_what_was_measured(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    proc = await _soak(out, "--checkpoint-every", "1")
    checkpoint = out / "results.json"
    # A checkpoint with a sample in it: the stack is up and being measured.
    for _ in range(900):
        if checkpoint.exists() and json.loads(checkpoint.read_text() or "{}").get("samples"):
            break
        assert proc.returncode is None
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    results = json.loads(checkpoint.read_text())
    _nothing_left(results)
    assert results["ended"].startswith("interrupted")
    assert results["samples"]
    report = (out / "report.md").read_text()
    assert stdout.decode() == report
    assert "**Ended: interrupted" in report
