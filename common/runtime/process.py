"""One child server process: start it, wait until it answers, stop it, and never leak it.

Children are started with ``PR_SET_PDEATHSIG`` so that the kernel kills them if this process
dies without running its cleanup (SIGKILL, a crash): an orphaned broker or Redis server would
otherwise hold its port and memory until someone finds it.

Each child runs in a session of its own, so a terminal's Ctrl-C (SIGINT to the whole foreground
process group) reaches only the parent, which then stops its children in the order it chooses.
Had the children received it too, servers would exit under clients that still need them (a
service stuck flushing to a broker that is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO

from common.errors import RuntimeStartError
from common.lifecycle import Lifecycle

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name, use_errno=True) if _libc_name else None


def die_with_parent() -> None:
    """Have the kernel kill this child when its parent dies (runs between fork and exec)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS`` in /proc); None if it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ChildProcess(Lifecycle):
    """A server child process with a log file, a readiness probe and an idempotent stop."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], Awaitable[bool]],
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        known_to_hang: str | None = None,
    ) -> None:
        """``known_to_hang``: why this child is known to ignore SIGTERM now and then; its
        kill after ``stop_timeout`` is then expected and logged at INFO, not as a warning."""
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._ready = ready
        self._env = env
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._known_to_hang = known_to_hang
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: IO[bytes] | None = None
        self.killed = False  # it was killed (did not stop on SIGTERM, or was forced)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def _start(self) -> None:
        if self._proc is not None:
            return
        out: int | IO[bytes] = asyncio.subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = out = self.log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from None
        await self._wait_ready()
        log.info("%s ready (pid %s)", self.name, self.pid)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.02
        while True:
            if self._proc.returncode is not None:
                raise RuntimeStartError(
                    f"{self.name} exited with code {self._proc.returncode} during start-up"
                    f"{self._log_hint()}"
                )
            if await self._ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeStartError(
                    f"{self.name} did not become ready within {self._ready_timeout:.0f}s"
                    f"{self._log_hint()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    async def wait(self) -> int:
        """Wait for the process to exit on its own; return its exit code."""
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self, timeout: float | None = None, *, why: str = "") -> None:
        """Terminate, then kill after ``timeout`` (default: the child's own grace).

        ``why`` says why a kill after that grace is to be expected (the servers the child
        needs are gone): it is then logged at INFO with that reason. Safe to call twice, or
        before start.
        """
        proc = self._proc
        grace = self._stop_timeout if timeout is None else timeout
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                expected = why or self._known_to_hang
                if expected:
                    log.info("%s did not stop in %.1fs (%s); killed", self.name, grace, expected)
                else:
                    log.warning("%s did not stop in %.0fs; killing it", self.name, grace)
                await self.kill()
        self._close_log()

    async def kill(self) -> None:
        """Kill at once, without asking: for a child known to be stuck. Safe to call twice."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
                self.killed = True
            await proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


async def tcp_accepts(host: str, port: int) -> bool:
    """True once something accepts TCP connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
