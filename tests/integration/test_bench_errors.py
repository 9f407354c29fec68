"""Every benchmark, given a broker that is not there: one line naming it, exit 1, no traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers import bench


@pytest.mark.parametrize(
    ("module", "prog"),
    [
        ("marketfeed.bench.consumers", "marketfeed bench consumers"),
        ("marketfeed.bench.orders", "marketfeed bench orders"),
        ("marketfeed.bench.soak", "marketfeed bench soak"),
        ("marketfeed.bench.access", "marketfeed bench access"),
    ],
)
async def test_unreachable_broker_is_one_line_and_exit_1(
    tmp_path: Path, module: str, prog: str
) -> None:
    proc = await bench(
        module, "--bootstrap", "127.0.0.1:1", "--connect-timeout", "1", "--out", str(tmp_path)
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, stderr.decode()[-2000:]
    lines = stderr.decode().strip().splitlines()
    assert lines[-1].startswith(f"{prog}: ")
    assert "127.0.0.1:1" in lines[-1]
    assert "Traceback" not in stderr.decode()
    assert not stdout
