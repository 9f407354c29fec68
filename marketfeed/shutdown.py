"""How ``marketfeed up`` stops what it runs: in stages, one line per part, at once if forced.

Stages, first to last: the order flow; order_entry and portfolio (together); the publisher;
the Redis servers; the broker. So nothing loses a server or a peer it still needs while it
stops: the order flow's last orders are answered, the services commit to a broker that is
still there, and the broker, which forgets everything anyway, goes last. Each part gets SIGTERM
and a grace, then SIGKILL (a warning: that is a bug, except for the broker's known habit of
ignoring SIGTERM). A second Ctrl-C (``force``) kills whatever is left at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from common.lifecycle import cancel_and_wait
from common.runtime import ChildProcess
from marketfeed.console import Console


class Stage(IntEnum):
    """When a part stops: lower first."""

    ORDER_FLOW = 0
    SERVICES = 1
    PUBLISHER = 2
    REDIS = 3
    BROKER = 4


@dataclass(slots=True)
class Part:
    """One child of ``up``. ``process`` changes when a Redis server is restarted."""

    name: str
    process: ChildProcess
    stage: Stage


async def stop_parts(
    parts: Iterable[Part],
    console: Console,
    force: asyncio.Event,
    *,
    grace: float | None = None,
    why: str = "",
) -> bool:
    """Stop ``parts`` stage by stage, the parts of one stage together; True if forced.

    ``grace``: seconds each part gets before it is killed (default: its own); ``why``: why a
    kill is to be expected this time (the broker is gone), said at INFO instead of a warning.
    """
    parts = list(parts)
    started = time.monotonic()
    stages = asyncio.create_task(_in_stages(parts, console, grace, why))
    forced = asyncio.create_task(force.wait())
    try:
        await asyncio.wait([stages, forced], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(forced)
    if stages.done():
        stages.result()
        console.event(f"stopped everything in {time.monotonic() - started:.1f}s")
        return False
    await cancel_and_wait(stages)
    running = [p.name for p in parts if p.process.returncode is None]
    # kill() of a part that has exited only closes its log.
    await asyncio.gather(*(p.process.kill() for p in parts))
    console.event(f"forced: killed {', '.join(running) or 'nothing (all had stopped)'}")
    return True


async def _in_stages(parts: list[Part], console: Console, grace: float | None, why: str) -> None:
    for stage in sorted({p.stage for p in parts}):
        await asyncio.gather(
            *(_stop_one(p, console, grace, why) for p in parts if p.stage == stage)
        )


async def _stop_one(part: Part, console: Console, grace: float | None, why: str) -> None:
    process = part.process
    if process.returncode is not None:
        await process.stop()  # closes its log
        return
    started = time.monotonic()
    await process.stop(grace, why=why)
    spent = time.monotonic() - started
    if process.killed:
        console.event(f"killed {part.name} after {spent:.1f}s ({why or 'it ignored SIGTERM'})")
    else:
        console.event(f"stopped {part.name} in {spent:.1f}s")
