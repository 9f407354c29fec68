"""``marketfeed up`` while it runs: the status line, and a watch on every child, servers included.

What ends a run, and what does not:

- Ctrl-C, SIGTERM, SIGHUP or ``--duration``: a normal stop (exit 0).
- A service, the publisher or the order flow exits: everything stops (exit 1), with its log's
  tail.
- The broker exits: everything stops at once (exit 1). Its memory engine lost every topic and
  committed offset, so nothing could carry on against a new one.
- A Redis server exits: it is started again on the same port and data directory, so its
  append-only file gives back what it held, and its service reconnects by itself. More than
  ``_RESTARTS`` exits within ``_RESTART_WINDOW_S`` seconds end the run instead (exit 1).
- A server that stops answering (frozen by SIGSTOP, hung) is named in the log and the status
  line within seconds, and again when it answers. It is waited for (a frozen broker that
  resumes has lost nothing) for ``server_timeout`` seconds; then the broker counts as lost, and
  a Redis server is killed and restarted as above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from common.cli import EXIT_FAILURE, EXIT_OK
from common.errors import MarketfeedError, RuntimeStartError
from common.lifecycle import cancel_all
from common.runtime import HOST, EmbeddedStack
from common.runtime.probes import broker_answers, describe_exit, is_stopped, redis_answers
from common.runtime.process import ChildProcess, rss_bytes
from common.topics import Topics
from common.watermarks import WatermarkReader
from marketfeed.console import Console
from marketfeed.shutdown import Part
from marketfeed.status import StatusLine

_PROBE_EVERY_S = 1.0
_PROBE_TIMEOUT_S = 2.0
# Failed probes in a row before a server that is not stopped is said not to answer: one slow
# answer on a loaded machine is no news.
_SILENT_AFTER = 2
_STATUS_READ_TIMEOUT_S = 3.0
_RESTARTS = 3
_RESTART_WINDOW_S = 60.0


class Ending(StrEnum):
    REQUESTED = "requested"  # Ctrl-C, SIGTERM, SIGHUP
    DURATION = "duration"
    CHILD_EXITED = "child exited"
    BROKER_LOST = "broker lost"
    REDIS_LOST = "redis lost"
    START_FAILED = "start failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    ending: Ending
    message: str = ""
    log_path: Path | None = None

    @property
    def code(self) -> int:
        return EXIT_OK if self.ending in (Ending.REQUESTED, Ending.DURATION) else EXIT_FAILURE


@dataclass(slots=True)
class _Health:
    """What the probes know of one server."""

    failures: int = 0
    silent_since: float | None = None  # when it was first found not answering
    named: bool = False  # the user was told


class Supervisor:
    def __init__(
        self,
        *,
        parts: dict[str, Part],
        servers: EmbeddedStack,
        console: Console,
        topics: Topics,
        status_interval: float,
        server_timeout: float,
        on_restart: Callable[[], None],
    ) -> None:
        self.parts = parts
        self.servers = servers
        self.console = console
        self.topics = topics
        self.status_interval = status_interval
        self.server_timeout = server_timeout
        self.on_restart = on_restart
        self._health: dict[str, _Health] = {}
        self._restarts: dict[str, deque[float]] = {}

    async def run(
        self, stop: asyncio.Event, duration: float | None, announce: Callable[[Outcome], None]
    ) -> Outcome:
        """Until something ends the run (see the module's doc); what it was, also handed to
        ``announce`` at once (before the status line and the watches are wound down)."""
        waits: list[Awaitable[Outcome]] = [self._stopped(stop), self._probes()]
        if duration is not None:
            waits.append(self._after(duration))
        for part in self.parts.values():
            if part.name == self._broker_name:
                waits.append(self._broker_exit(part.process))
            elif part.name in self._redis_names:
                waits.append(self._keep_redis(self._redis_names[part.name]))
            else:
                waits.append(self._child_exit(part))
        tasks = [asyncio.ensure_future(w) for w in waits]
        status = asyncio.create_task(self._status_loop(), name="up-status")
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            outcome = min((t.result() for t in done), key=lambda o: o.code == EXIT_OK)
            announce(outcome)
        finally:
            await cancel_all([*tasks, status])
        return outcome

    # -- what ends a run -------------------------------------------------------------------

    @staticmethod
    async def _stopped(stop: asyncio.Event) -> Outcome:
        await stop.wait()
        return Outcome(Ending.REQUESTED)

    @staticmethod
    async def _after(duration: float) -> Outcome:
        await asyncio.sleep(duration)
        return Outcome(Ending.DURATION)

    @staticmethod
    async def _child_exit(part: Part) -> Outcome:
        code = await part.process.wait()
        return Outcome(
            Ending.CHILD_EXITED, f"{part.name} {describe_exit(code)}", part.process.log_path
        )

    async def _broker_exit(self, broker: ChildProcess) -> Outcome:
        code = await broker.wait()
        return Outcome(
            Ending.BROKER_LOST, f"{self._where(self._broker_name)} {describe_exit(code)}"
        )

    async def _keep_redis(self, service: str) -> Outcome:
        """Restart ``service``'s Redis each time it exits; an Outcome once that is no use."""
        name = self.servers.redis[service].name
        while True:
            server = self.servers.redis[service]
            code = await server.wait()
            what = f"{self._where(name)} {describe_exit(code)}"
            now = time.monotonic()
            recent = self._restarts.setdefault(name, deque())
            while recent and now - recent[0] > _RESTART_WINDOW_S:
                recent.popleft()
            if len(recent) >= _RESTARTS:
                return Outcome(
                    Ending.REDIS_LOST,
                    f"{what}, its {len(recent) + 1}th exit in {_RESTART_WINDOW_S:.0f}s",
                    server.log_path,
                )
            self.console.event(
                f"{what}; restarting it on the same port with its data ({server.data_dir})",
                level=logging.WARNING,
            )
            try:
                restarted = await self.servers.restart_redis(service)
            except RuntimeStartError as exc:
                return Outcome(Ending.REDIS_LOST, f"{what}; could not restart it: {exc}")
            recent.append(now)
            self._health.pop(name, None)
            self.parts[name].process = restarted
            self.on_restart()
            self.console.event(
                f"{self._where(name)} restarted in {time.monotonic() - now:.1f}s "
                f"(pid {restarted.pid})",
                level=logging.WARNING,
            )

    async def _probes(self) -> Outcome:
        """Probe every server each second; an Outcome if the broker stays silent too long."""
        while True:
            await asyncio.sleep(_PROBE_EVERY_S)
            broker = self.servers.broker
            redis = dict(self.servers.redis)
            checks: dict[str, Awaitable[bool]] = {}
            if broker is not None:
                checks[broker.name] = asyncio.to_thread(
                    broker_answers, HOST, broker.port, timeout=_PROBE_TIMEOUT_S
                )
            for server in redis.values():
                checks[server.name] = redis_answers(HOST, server.port, timeout=_PROBE_TIMEOUT_S)
            answers = await asyncio.gather(*checks.values())
            now = time.monotonic()
            for name, answered in zip(checks, answers, strict=True):
                process = self.parts[name].process
                if process.returncode is not None:
                    continue  # its exit is handled by its own watch
                silent = self._note(name, process, answered, now)
                if silent < self.server_timeout:
                    continue
                if name == self._broker_name:
                    return Outcome(
                        Ending.BROKER_LOST,
                        f"{self._where(name)} has not answered for {silent:.0f}s",
                    )
                self.console.event(
                    f"{self._where(name)} has not answered for {silent:.0f}s; killing it",
                    level=logging.WARNING,
                )
                await process.kill()  # its watch restarts it

    def _note(self, name: str, process: ChildProcess, answered: bool, now: float) -> float:
        """Record a probe's answer, telling the user of a change; seconds silent so far."""
        health = self._health.setdefault(name, _Health())
        if answered:
            if health.named and health.silent_since is not None:
                self.console.event(
                    f"{self._where(name)} answers again after {now - health.silent_since:.0f}s",
                    level=logging.WARNING,
                )
            self._health[name] = _Health()
            return 0.0
        health.failures += 1
        if health.silent_since is None:
            health.silent_since = now - _PROBE_TIMEOUT_S
        stopped = is_stopped(process.pid)
        if not health.named and (stopped or health.failures >= _SILENT_AFTER):
            health.named = True
            self.console.event(
                f"{self._where(name)} is not answering"
                f"{' (its process is stopped: SIGSTOP?)' if stopped else ''}",
                level=logging.WARNING,
            )
        return now - health.silent_since

    def alerts(self, now: float) -> list[str]:
        """One short text per server that is not answering, for the status line."""
        out = []
        for name, health in self._health.items():
            if health.named and health.silent_since is not None:
                out.append(
                    f"{self._where(name)} NOT ANSWERING for {now - health.silent_since:.0f}s"
                )
        return out

    # -- the status line -------------------------------------------------------------------

    async def _status_loop(self) -> None:
        status = StatusLine(self.topics, started=time.monotonic())
        broker = self.servers.bootstrap
        while True:
            try:
                async with WatermarkReader(
                    broker, connect_timeout=self.server_timeout, security=self.servers.security
                ) as reader:
                    while True:
                        await asyncio.sleep(self.status_interval)
                        self.console.status(await self._status(status, reader))
            except MarketfeedError:
                # The broker was away when the reader started: the probes say so.
                await asyncio.sleep(self.status_interval)

    async def _status(self, status: StatusLine, reader: WatermarkReader) -> str:
        now = time.monotonic()
        alerts = self.alerts(now)
        if self._broker_name in self._health and self._health[self._broker_name].named:
            return status.alert(now, alerts)
        try:
            async with asyncio.timeout(_STATUS_READ_TIMEOUT_S):
                feed = {b: await reader.generation_marks(b) for b in self.topics.market_data}
                marks = await reader.high_watermarks(status.watched)
        except (MarketfeedError, TimeoutError):
            return status.alert(now, [*alerts, f"no answer from the broker at {reader.bootstrap}"])
        broker = self.servers.broker
        memory = rss_bytes(broker.pid) if broker is not None else None
        return status.line(marks, feed, now, broker_rss_bytes=memory, alerts=alerts)

    # -- names -----------------------------------------------------------------------------

    @property
    def _broker_name(self) -> str:
        return self.servers.broker.name if self.servers.broker is not None else "broker"

    @property
    def _redis_names(self) -> dict[str, str]:
        return {server.name: service for service, server in self.servers.redis.items()}

    def _where(self, name: str) -> str:
        broker = self.servers.broker
        if broker is not None and name == broker.name:
            return broker.where
        for server in self.servers.redis.values():
            if server.name == name:
                return server.where
        return name
