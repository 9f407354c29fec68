"""The benchmark's side of its worker processes: start, ask, freeze, thaw, stop.

Why processes: on a 2-core machine the publisher at full speed is a core's worth of Python,
and so is a consumer that has fallen behind. In one process they would share one event loop
and one GIL, and each would measure the others' batch sizes; as processes, the kernel spreads
them (and the broker) over both cores, and what is left of the contention is what any
deployment on two cores would see. See marketfeed.bench.consumers.worker for the protocol.

A consumer's "pause" is SIGSTOP: it stops pulling at once and entirely (its prefetching too)
while the feed goes on, and SIGCONT resumes it exactly where it was. Its connections stay
open: it has no consumer group, so the broker has nothing to time out. A request it had in
flight completes on resume, unless its client's own timeout ran out meanwhile (the wall clock
jumped): the caching consumer then retries, as it retries any Redis failure; the naive
consumer waits for Redis without a timeout; aiokafka's 40 s request timeout outlasts a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from pathlib import Path
from typing import IO, Any

from common.errors import MarketfeedError, RuntimeStartError
from common.lifecycle import Lifecycle
from common.runtime.process import die_with_parent
from marketfeed.bench.consumers.roles.base import WorkerParams
from marketfeed.bench.core.children import child_env, module_argv

log = logging.getLogger(__name__)

WORKER_MODULE = "marketfeed.bench.consumers.worker"
_CALL_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


class WorkerError(MarketfeedError):
    """A benchmark worker died or could not do what it was asked."""


class Worker(Lifecycle):
    def __init__(
        self,
        role: str,
        params: WorkerParams,
        *,
        start_timeout: float,
        log_path: Path | None = None,
    ) -> None:
        self.role = role
        self.params = params
        self.start_timeout = start_timeout
        self.log_path = log_path
        # What it said when ready.
        self.info: dict[str, Any] = {}
        self.suspended = False
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._ids = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _start(self) -> None:
        """Start the worker and wait until it says it is ready (``info``)."""
        err: int | IO[bytes] | None = None  # inherit: a worker's traceback reaches the user
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = err = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            *module_argv(WORKER_MODULE, self.params, self.role),
            env=child_env(self.params),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            preexec_fn=die_with_parent,
            # Its own session: Ctrl-C reaches only the benchmark, which stops workers in order.
            start_new_session=True,
            limit=1 << 20,
        )
        timeout = self.start_timeout
        try:
            ready = await asyncio.wait_for(self._read(), timeout)
        except TimeoutError:
            raise RuntimeStartError(
                f"bench worker {self.role} was not ready within {timeout:.0f}s{self._hint()}"
            ) from None
        if not ready.get("ready"):
            raise RuntimeStartError(f"{self.role}: {ready.get('error', 'did not start')}")
        self.info = ready

    async def call(
        self, cmd: str, *, timeout: float = _CALL_TIMEOUT_S, **args: Any
    ) -> dict[str, Any]:
        """Send one request and wait for its answer."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise WorkerError(f"bench worker {self.role} is not running")
        if self.suspended:
            raise WorkerError(f"bench worker {self.role} is paused; it cannot answer {cmd}")
        async with self._lock:
            self._ids += 1
            ident = self._ids
            proc.stdin.write((json.dumps({"id": ident, "cmd": cmd, **args}) + "\n").encode())
            try:
                await proc.stdin.drain()
                answer = await asyncio.wait_for(self._read(), timeout)
            except (ConnectionError, TimeoutError) as exc:
                raise WorkerError(
                    f"bench worker {self.role} did not answer {cmd}: {exc!r}{self._hint()}"
                ) from None
        if answer.get("id") != ident or not answer.get("ok"):
            raise WorkerError(f"bench worker {self.role} refused {cmd}: {answer.get('error')}")
        return answer

    async def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            code = await self._proc.wait()
            raise WorkerError(f"bench worker {self.role} exited with code {code}{self._hint()}")
        message: dict[str, Any] = json.loads(line)
        return message

    def _hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    def suspend(self) -> None:
        """Freeze the worker (SIGSTOP): it stops consuming at once while the feed goes on."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGSTOP)
            self.suspended = True

    def resume(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGCONT)
        self.suspended = False

    async def stop(self) -> None:
        """Ask the worker to stop, then terminate, then kill. Safe to call twice."""
        timeout = _STOP_TIMEOUT_S
        proc = self._proc
        if proc is None:
            self._close_log()
            return
        if proc.returncode is None:
            # A frozen process would sit on SIGTERM until thawed.
            self.resume()
            started = time.monotonic()
            with contextlib.suppress(WorkerError):
                await self.call("stop", timeout=timeout)
            remaining = max(1.0, timeout - (time.monotonic() - started))
            try:
                await asyncio.wait_for(proc.wait(), remaining)
            except TimeoutError:
                log.warning("bench worker %s did not stop; terminating it", self.role)
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
