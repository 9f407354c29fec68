"""``marketfeed up`` as a user runs it: starts everything, reports, stops everything."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.helpers import spawn


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits to be reaped by whoever inherited it.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


async def _up(tmp_path: Path, *flags: str) -> tuple[asyncio.subprocess.Process, dict[str, object]]:
    env = {
        **os.environ,
        "MARKETFEED_STATE_DIR": str(tmp_path / "state"),
        "MARKETFEED_SESSION_TIMEOUT": "2",  # the services' group joins take ~1 s, not ~3 s
    }
    proc = await spawn(
        sys.executable,
        "-m",
        "marketfeed",
        "up",
        "--log-dir",
        str(tmp_path / "logs"),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    state_file = tmp_path / "state" / "up.json"
    async with asyncio.timeout(30):
        while not state_file.exists():
            assert proc.returncode is None, "up exited before it was ready"
            await asyncio.sleep(0.05)
    return proc, json.loads(state_file.read_text())


async def test_up_runs_for_duration_reports_and_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, state = await _up(tmp_path, "--duration", "3", "--rate", "2000")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"broker {state['bootstrap']}" in text
    status = [line for line in text.splitlines() if "published" in line]
    assert status, text
    published = int(status[-1].split("published")[1].split()[0].replace(",", ""))
    assert published > 1000
    # The generation being written and the broker's memory (the embedded broker: generations).
    assert re.search(r"md\.quotes g\d+ hw [\d,]+  md\.trades g\d+ hw", status[-1]), status[-1]
    assert re.search(r"\| broker \d+ MB", status[-1]), status[-1]
    assert "history: generations" in text
    # The status line also shows the order topics (the flow runs by default, at 2/s).
    assert "orders.commands hw" in status[-1]
    assert "orders.events hw" in status[-1]
    assert "/s simulated from acct-01..acct-10 on orders.commands" in text
    pids = state["processes"]
    assert isinstance(pids, dict)
    assert set(pids) >= {
        "broker",
        "redis[order_entry]",
        "redis[portfolio]",
        "publisher",
        "order_entry",
        "portfolio",
        "order_flow",
    }
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not (tmp_path / "state" / "up.json").exists()
    # The order flow stopped first and cleanly: everything it sent was acknowledged.
    log = (tmp_path / "logs" / "order_flow.log").read_text()
    stopped = [line for line in log.splitlines() if "stopped:" in line]
    assert stopped, log
    counts = re.search(r"stopped: (\d+) sent, (\d+) acked, 0 failed", stopped[-1])
    assert counts, stopped[-1]
    assert counts.group(1) == counts.group(2)


async def test_up_stops_in_order_on_sigint(tmp_path: Path) -> None:
    proc, state = await _up(tmp_path, "--rate", "1000", "--orders-rate", "0")
    await asyncio.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    # --orders-rate 0: no order flow, the rest as usual.
    assert "no simulated order flow (--orders-rate 0)" in out.decode()
    pids = state["processes"]
    assert isinstance(pids, dict)
    assert "order_flow" not in pids
    assert {"publisher", "order_entry", "portfolio"} <= set(pids)
    assert not [name for name, pid in pids.items() if _alive(pid)]
    # The publisher flushed before the broker went away: its log says everything was acked.
    log = (tmp_path / "logs" / "publisher.log").read_text()
    stopped = [line for line in log.splitlines() if "stopped:" in line]
    assert stopped, log
    assert " 0 lost" in stopped[-1]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--rate", "-1"], "--rate=-1.0: must be > 0"),
        (["--symbols", "0"], "--symbols=0"),
        (["--orders-rate", "-1"], "--orders-rate=-1.0: must be a finite number >= 0"),
        (["--accounts", "1000"], "--accounts=1000: must be between 1 and 999"),
    ],
)
async def test_up_rejects_bad_flags_with_one_line(flags: list[str], needle: str) -> None:
    proc = await spawn(
        sys.executable,
        "-m",
        "marketfeed",
        "up",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1
    assert needle in lines[0]
