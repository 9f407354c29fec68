"""``GET /v1/lag`` and its history: ``marketfeed lag`` sampled in the background.

One ``LagMonitor`` (the code behind ``marketfeed lag``) samples every served cache and the
broker each ``interval``; the latest report is what ``GET /v1/lag`` answers (the JSON of
``marketfeed lag --json``, URLs without credentials), and a window of the last minutes of
per-service offset and time lag is ``GET /v1/lag/history`` (the dashboard's chart); the
routes are in ``routes/lag.py``. Sampling in the background keeps a request from waiting two
samples for a rate, and gives the chart its past. The monitor connects to the broker with
retries, so a broker away at start is a 503 until it is back, not a failed start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from common.errors import CacheUnavailableError, MarketfeedError
from common.lifecycle import Lifecycle, cancel_and_wait
from common.logs import redact_url
from common.retry import Backoff, Retry
from http_api.errors import Reason
from marketfeed.lag.monitor import LagMonitor, Report
from marketfeed.targets import Target

log = logging.getLogger("http_api.lag")


class LagSampler(Lifecycle):
    def __init__(
        self,
        targets: Sequence[Target],
        *,
        interval: float,
        history_s: float,
        connect_timeout: float,
        broker_ready: asyncio.Event,
    ) -> None:
        self.targets = list(targets)
        self._broker_ready = broker_ready
        self.interval = interval
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        self.error_reason = Reason.BROKER_UNAVAILABLE
        self.history: deque[dict[str, Any]] = deque(maxlen=max(1, int(history_s / interval)))
        self._connect_timeout = connect_timeout
        self._retry = Retry(
            "api: lag sampling", errors=(MarketfeedError,), backoff=Backoff(most=5.0), logger=log
        )
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        if self.targets:
            self._task = asyncio.create_task(self._run(), name="api-lag-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await super().stop()

    async def _run(self) -> None:
        monitor = LagMonitor(self.targets, connect_timeout=self._connect_timeout)
        self.resources.push_async_callback(monitor.stop)
        # The API's Kafka link says when the broker answers (and logs its absence once);
        # starting the monitor before would log a line per attempt of its own connection.
        self.error = "waiting for the broker"
        await self._broker_ready.wait()
        await self._retry.run(lambda: self._connect(monitor), what="connecting")
        while True:
            await asyncio.sleep(self.interval)
            try:
                reports = await self._retry.run(lambda: self._sample(monitor), timeout=0)
            except MarketfeedError as exc:
                if not exc.retriable:
                    raise
                continue
            self._record(reports)

    async def _connect(self, monitor: LagMonitor) -> None:
        try:
            await monitor.start()
        except MarketfeedError as exc:
            self._failed(exc)
            raise

    async def _sample(self, monitor: LagMonitor) -> list[Report]:
        try:
            async with asyncio.timeout(self._connect_timeout + self.interval):
                return await monitor.update()
        except TimeoutError:
            exc = MarketfeedError(
                f"no answer within {self._connect_timeout + self.interval:g}s", retriable=True
            )
            self._failed(exc)
            raise exc from None
        except MarketfeedError as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: MarketfeedError) -> None:
        self.error = str(exc)
        cache = isinstance(exc, CacheUnavailableError)
        self.error_reason = Reason.CACHE_UNAVAILABLE if cache else Reason.BROKER_UNAVAILABLE

    def _record(self, reports: list[Report]) -> None:
        now = time.time_ns()
        self.error = None
        self.latest = {"time_ns": now, "services": [_public(r) for r in reports]}
        self.history.append(
            {
                "time_ns": now,
                "services": {
                    r.lag.service: {
                        "state": str(r.lag.state),
                        "offset_lag": r.lag.offset_lag,
                        "time_lag_s": r.lag.time_lag_s,
                    }
                    for r in reports
                },
            }
        )


def _public(report: Report) -> dict[str, Any]:
    out = report.as_dict()
    out["redis_url"] = redact_url(report.target.redis_url)
    return out
