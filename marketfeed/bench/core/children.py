"""The child processes of a benchmark: how each is launched, and the CPU and memory each used.

A child is launched from its config, ``python -m MODULE`` with every one of its settings as a
flag (``common.config.to_argv``), secrets through the environment (``to_env``), and the
environment without ``MARKETFEED_*``: nothing in the user's shell can quietly change what is
measured (:func:`spawn`). CPU time is read from ``/proc`` per process and given in cores (CPU
seconds per second of a window), so that where the machine's two cores went is part of every
figure; so is each process's resident memory.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config import ENV_PREFIX, to_argv, to_env
from common.runtime import ChildProcess


def module_argv(module: str, config: Any, *positional: str) -> list[str]:
    """``python -m module [positional...]`` with ``config`` as flags."""
    return [sys.executable, "-m", module, *positional, *to_argv(config)]


def child_env(config: Any) -> dict[str, str]:
    """This environment without ``MARKETFEED_*``, plus ``config``'s secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(to_env(config))
    return env


async def _alive() -> bool:
    # A benchmark measures when its children are ready (by probing them), it does not wait.
    return True


async def spawn(
    resources: contextlib.AsyncExitStack,
    *,
    name: str,
    module: str,
    config: Any,
    log_path: Path | None,
    stop_timeout: float,
) -> ChildProcess:
    """Start ``python -m module`` launched from ``config``; ``resources`` stops it.

    Its stop is registered before it starts, so a start that fails half-way is stopped too.
    """
    proc = ChildProcess(
        name=name,
        argv=module_argv(module, config),
        ready=_alive,
        log_path=log_path,
        env=child_env(config),
        stop_timeout=stop_timeout,
    )
    resources.push_async_callback(proc.stop)
    await proc.start()
    return proc


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process now (``VmRSS``); None where /proc cannot tell."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no VmRSS


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc cannot tell."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process in MB; None where /proc cannot tell."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_now(pids: Mapping[str, int | None]) -> dict[str, float | None]:
    """CPU seconds each named process has used so far."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cores(
    before: Mapping[str, float | None], after: Mapping[str, float | None], elapsed: float
) -> dict[str, float | None]:
    """Cores each process used between two ``cpu_now`` readings ``elapsed`` seconds apart;
    None for a process that /proc could not tell about, or for an empty window."""
    used: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        if start is None or end is None or elapsed <= 0:
            used[name] = None
        else:
            used[name] = (end - start) / elapsed
    return used
