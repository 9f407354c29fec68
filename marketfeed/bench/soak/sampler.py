"""The soak's sampling loop: one Sample every ``--sample-every`` seconds until the end.

Samples are taken on a fixed schedule from the moment the stack is up (a slow sample skips
ticks rather than piling up). Each one closes the probe's latency window and reads, with a
bound on how long each reading may take (a frozen broker must not freeze the soak): every
cache's lag (marketfeed.lag's monitor and rules, the probe's too), resident memory and CPU of
every process (``/proc``), the broker's topics (generations), and the order outcomes so far.

The loop ends when the warm-up and ``--duration`` have passed, on Ctrl-C or SIGTERM, or when a
process of the stack dies; it says which in ``results.ended``. Every ``--checkpoint-every``
seconds what was measured so far is handed to ``checkpoint`` (written to ``--out``), so that
even a soak killed outright leaves its figures behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError, MarketfeedError
from common.lifecycle import cancel_and_wait
from marketfeed.bench.core.children import cores, cpu_now, rss_bytes
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.soak.generations import GenerationCounts
from marketfeed.bench.soak.results import SOAK, WARMUP, Run, Sample, ServiceLag
from marketfeed.bench.soak.settings import SoakConfig
from marketfeed.bench.soak.stack import Watched

_MB = 1024 * 1024


class Sampler:
    def __init__(
        self,
        config: SoakConfig,
        watched: Watched,
        run: Run,
        progress: StepProgress,
        checkpoint: Callable[[Run], None],
    ) -> None:
        self.config = config
        self.watched = watched
        self.run = run
        self.progress = progress
        self.checkpoint = checkpoint
        # A reading may take this long before it is given up for this sample.
        self._limit = max(2.0, config.sample_every)
        self._cpu, self._cpu_at = cpu_now(watched.pids), time.monotonic()
        self._generations: GenerationCounts | None = None
        # Ends when the probe's consumer does (by an error: the soak stops it only after).
        self._probe_task: asyncio.Future[None] | None = None

    async def loop(self, stop: asyncio.Event) -> None:
        config, results = self.config, self.run.results
        every = config.sample_every
        t0 = last = time.monotonic()
        saved = t0
        tick = 0
        self._probe_task = asyncio.ensure_future(self.watched.probe.consumer.wait())
        try:
            while True:
                # The next tick on the schedule; a slow sample skips ticks rather than piling up.
                tick = max(tick + 1, int((time.monotonic() - t0) / every) + 1)
                wake = t0 + tick * every
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, wake - time.monotonic()))
                if stop.is_set():
                    results.ended = "interrupted (Ctrl-C or SIGTERM)"
                    break
                now = time.monotonic()
                sample = await self.take(now - t0)
                self.progress.advance(now - last)
                self.progress.phase(_progress_line(sample))
                last = now
                results.elapsed_s = now - t0
                if now - saved >= config.checkpoint_every:
                    self.checkpoint(self.run)
                    saved = now
                if (death := self.death()) is not None:
                    results.ended = death
                    break
                # The report compares the first and the last of the measured run: it needs two
                # samples of it, which a loaded machine skipping ticks may not have had yet.
                measured = sum(1 for s in results.samples if s.phase == SOAK)
                if now - t0 >= config.total_s - 1e-6 and measured >= 2:
                    results.ended = "completed"
                    break
        finally:
            await cancel_and_wait(self._probe_task)

    async def take(self, elapsed: float) -> Sample:
        """The sample of the window that ends now, ``elapsed`` seconds after the stack was up."""
        watched = self.watched
        samples = self.run.results.samples
        # To the millisecond, each window beginning exactly where the previous one ended.
        t = round(elapsed, 3)
        window_s = round(t - (samples[-1].t if samples else 0.0), 3)
        window = watched.probe.take_window()
        self.run.histograms.append(window.histogram.encode())
        lag = await self._lag()
        cpu, at = cpu_now(watched.pids), time.monotonic()
        used = cores(self._cpu, cpu, at - self._cpu_at)
        self._cpu, self._cpu_at = cpu, at
        rss = {name: rss_bytes(pid) for name, pid in watched.pids.items()}
        sample = Sample(
            t=t,
            phase=SOAK if t - window_s >= self.config.warmup - 1e-6 else WARMUP,
            window_s=window_s,
            latency_ms=window.histogram.percentiles().as_dict(),
            applied=window.applied,
            lag=lag,
            rss_mb={n: None if b is None else round(b / _MB, 1) for n, b in rss.items()},
            cpu={n: None if c is None else round(c, 3) for n, c in used.items()},
            generations=await self._topics(),
            orders=dict(watched.outcomes.counts),
        )
        self.run.results.samples.append(sample)
        return sample

    async def _lag(self) -> dict[str, ServiceLag]:
        names = [target.service for target in self.watched.monitor.targets]
        try:
            async with asyncio.timeout(self._limit):
                reports = await self.watched.monitor.update()
        except (MarketfeedError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {self._limit:g}s"
            return {n: ServiceLag("unavailable", why, None, None, None, None) for n in names}
        return {
            r.target.service: ServiceLag(
                state=str(r.lag.state),
                reason=r.lag.reason,
                offset_lag=r.lag.offset_lag,
                time_lag_s=r.lag.time_lag_s,
                in_rate=r.lag.in_rate,
                apply_rate=r.lag.apply_rate,
            )
            for r in reports
        }

    async def _topics(self) -> GenerationCounts | None:
        """The generations the broker holds; the last known ones if it does not answer now."""
        watched = self.watched
        try:
            async with asyncio.timeout(self._limit):
                names = await topic_names(watched.lister, watched.bootstrap)
        except (MarketfeedError, TimeoutError):
            return self._generations
        self._generations = watched.generations.update(names)
        return self._generations

    def death(self) -> str | None:
        """Why the soak cannot go on: a process of the stack, or a reader, has ended."""
        for name, child in self.watched.children.items():
            if child.returncode is not None:
                return f"{name} exited with code {child.returncode} (see {child.log_path})"
        probe = self._probe_task
        if probe is not None and probe.done():
            error = None if probe.cancelled() else probe.exception()
            return f"the latency probe's cache stopped: {error!r}"
        try:
            self.watched.outcomes.check()
        except (RuntimeError, MarketfeedError) as exc:
            return f"the orders.events reader stopped: {exc!r}"
        return None


async def topic_names(consumer: AIOKafkaConsumer, bootstrap: str) -> set[str]:
    """Every topic the broker has now (fresh metadata)."""
    try:
        names: set[str] = await consumer.topics()
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot list the topics of {bootstrap}: {exc}") from None
    return names


def _progress_line(sample: Sample) -> str:
    lat = sample.latency_ms
    parts: list[str] = [str(sample.phase)]
    if lat.get("count"):
        parts.append(f"e2e p50 {lat['p50_ms']:.1f} p99 {lat['p99_ms']:.1f} ms")
    else:
        parts.append("no quote readable")
    oe = sample.lag.get("order_entry")
    if oe is not None:
        shown = "?" if oe.time_lag_s is None else f"{oe.time_lag_s:.2f}s"
        parts.append(f"order_entry {oe.state} {shown}")
    broker = sample.rss_mb.get("broker")
    if broker is not None:
        parts.append(f"broker {broker:,.0f} MB")
    if sample.generations is not None:
        parts.append(f"generation {sample.generations.current}")
    return " · ".join(parts)
