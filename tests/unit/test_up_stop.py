"""How ``marketfeed up`` stops and tells it, without servers: stages, a forced stop, a closed
stdout, how a child ended, and the status line's alerts."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
from pathlib import Path

from aiokafka import TopicPartition

from common.runtime import ChildProcess
from common.runtime.probes import describe_exit, is_stopped
from common.topics import Topics
from marketfeed.console import Console
from marketfeed.shutdown import Part, Stage, stop_parts
from marketfeed.status import StatusLine
from tests.helpers import eventually


def _child(name: str, *, trapped: Path | None = None) -> ChildProcess:
    """A bash loop; with ``trapped``, one that ignores SIGTERM, ready once its trap is set (it
    writes that file then): however loaded the machine, SIGTERM cannot come before it."""
    trap = f"trap '' TERM; : > {trapped}; " if trapped else ""

    async def ready() -> bool:
        return trapped is None or await asyncio.to_thread(trapped.exists)

    # `exec sleep` would lose the trap; a loop of short sleeps keeps bash answering signals.
    return ChildProcess(
        name=name,
        argv=["bash", "-c", f"{trap}while true; do sleep 0.05; done"],
        ready=ready,
        stop_timeout=5.0,
    )


def _console() -> tuple[Console, io.StringIO]:
    err = io.StringIO()
    return Console(log=logging.getLogger("test.up"), out=io.StringIO(), err=err), err


async def test_parts_stop_stage_by_stage_one_line_each() -> None:
    parts = [
        Part("broker", _child("broker"), Stage.BROKER),
        Part("order_entry", _child("order_entry"), Stage.SERVICES),
        Part("order_flow", _child("order_flow"), Stage.ORDER_FLOW),
        Part("portfolio", _child("portfolio"), Stage.SERVICES),
    ]
    for part in parts:
        await part.process.start()
    console, err = _console()
    assert not await stop_parts(parts, console, asyncio.Event())
    lines = err.getvalue().splitlines()
    names = [line.split()[3] for line in lines[:-1]]
    assert names[0] == "order_flow"
    assert set(names[1:3]) == {"order_entry", "portfolio"}
    assert names[3] == "broker"
    assert all(line.startswith("marketfeed up: stopped ") for line in lines)
    assert lines[-1].startswith("marketfeed up: stopped everything in ")
    assert all(p.process.returncode is not None and not p.process.killed for p in parts)


async def test_a_second_ctrl_c_kills_what_is_left_at_once(tmp_path: Path) -> None:
    # It would take its whole 5 s grace.
    stubborn = _child("publisher", trapped=tmp_path / "trapped")
    parts = [Part("publisher", stubborn, Stage.PUBLISHER)]
    await stubborn.start()  # ready: bash has set its trap
    console, err = _console()
    force = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, force.set)  # Ctrl-C again
    assert await asyncio.wait_for(stop_parts(parts, console, force), 3)
    assert stubborn.returncode == -signal.SIGKILL
    assert "marketfeed up: forced: killed publisher" in err.getvalue()


async def test_an_expected_kill_is_said_with_its_reason(tmp_path: Path) -> None:
    stubborn = _child("order_entry", trapped=tmp_path / "trapped")
    await stubborn.start()  # ready: bash has set its trap
    console, err = _console()
    parts = [Part("order_entry", stubborn, Stage.SERVICES)]
    await stop_parts(parts, console, asyncio.Event(), grace=0.2, why="the broker is gone")
    # Killed once its 0.2 s grace was over (how long after depends on the machine's load).
    said = err.getvalue()
    killed = re.search(r"killed order_entry after (\d+\.\d)s \(the broker is gone\)", said)
    assert killed, said
    assert float(killed.group(1)) >= 0.2


def test_a_closed_stdout_is_dropped_and_events_still_reach_stderr(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # `| tee` killed by the same Ctrl-C
    err = io.StringIO()
    with os.fdopen(write, "w") as out:
        console = Console(log=logging.getLogger("test.up"), out=out, err=err)
        console.status("[ 1s] published 10")  # EPIPE: no error, stdout dropped
        console.show("banner")
        console.event("stopped broker in 0.1s")
    assert err.getvalue() == "marketfeed up: stopped broker in 0.1s\n"


async def test_how_a_child_ended_and_whether_it_is_stopped() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "exited (signal 9, SIGKILL)"
    child = _child("x")
    await child.start()
    try:
        assert child.pid is not None
        assert not is_stopped(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        pid = child.pid

        async def stopped() -> bool:
            return is_stopped(pid)

        await eventually(stopped, timeout=10, what="the child stopped by SIGSTOP")
        os.kill(child.pid, signal.SIGCONT)
    finally:
        await child.stop()
    assert not is_stopped(child.pid)  # gone


def test_the_status_line_carries_alerts_and_says_them_alone_without_figures() -> None:
    topics = Topics(prefix="")
    status = StatusLine(topics, started=100.0)
    marks = {TopicPartition(topics.orders_commands, 0): 10}
    feed = {topics.quotes: {(0, 0): 10}}
    alert = "broker at 127.0.0.1:1 NOT ANSWERING for 4s"
    assert status.line(marks, feed, now=101.0, alerts=[alert]).endswith(f"  | {alert}")
    assert status.alert(105.0, [alert]) == f"[     5s] {alert}"
