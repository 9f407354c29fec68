"""One rate step of the consumer benchmark: warm up, measure side by side, pause, catch up.

Every step runs on topics of its own, with a publisher and consumers started for it (see
marketfeed.bench.consumers.command for why). Within a step, every consumer under test runs side by
side on the same records throughout:

- warm-up: the processes have started and the feed runs at the step's rate; nothing counted;
- one measurement window: each worker keeps its own latency histogram and counts, and the lag
  of each is sampled about every 200 ms;
- then the consumers that kept up are paused together (frozen while the feed goes on),
  resumed together, and each one's catch-up is timed until its lag is back within its steady
  range. Together rather than one after the other: the embedded broker gets slower
  as a topic fills, so consumers paused one after another would each be timed on a
  different broker; together, they catch up under the same conditions, as they were measured.

A consumer that did not keep up is not paused (it cannot catch up with a feed it cannot keep
up with). Each consumer's verdicts (kept up, caught up, bounded) are defined in
marketfeed.bench.consumers.verdicts; the caller does not run an unbounded one at higher rates.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from marketfeed.bench.consumers.lag import Lag, LagSampler, Sample
from marketfeed.bench.consumers.results import (
    CatchUp,
    ConsumerStep,
    PublisherStep,
    Step,
    Timeline,
)
from marketfeed.bench.consumers.settings import CACHING_KINDS, Plan
from marketfeed.bench.consumers.verdicts import bounded, caught_up_level, lag_stats, read_share
from marketfeed.bench.consumers.workers import Worker
from marketfeed.bench.core.children import cores, cpu_now
from marketfeed.bench.core.progress import Progress
from marketfeed.bench.core.settings import rate_label


class StepRun:
    def __init__(
        self,
        plan: Plan,
        rate: float | None,
        *,
        publisher: Worker,
        consumers: dict[str, Worker],
        sampler: LagSampler,
        servers: dict[str, int | None],
        progress: Progress,
    ) -> None:
        self.plan = plan
        self.rate = rate
        self.label = rate_label(rate)
        self.publisher = publisher
        self.consumers = consumers
        self.sampler = sampler
        self.servers = servers
        self.progress = progress
        self.timeline = Timeline(
            offset_lag={n: [] for n in consumers}, time_lag_ms={n: [] for n in consumers}
        )
        self._t0 = time.monotonic()

    async def _sample(self, phase: str) -> Sample:
        sample = await self.sampler.sample()
        timeline = self.timeline
        timeline.t.append(round(sample.t - self._t0, 3))
        timeline.phase.append(phase)
        for name, lag in sample.lags.items():
            timeline.offset_lag[name].append(lag.offset)
            timeline.time_lag_ms[name].append(round(lag.time_ms, 1))
        return sample

    async def _sample_for(self, seconds: float, phase: str) -> list[Sample]:
        samples: list[Sample] = []
        deadline = time.monotonic() + seconds
        while (now := time.monotonic()) < deadline:
            samples.append(await self._sample(phase))
            spent = time.monotonic() - now
            await asyncio.sleep(max(0.0, min(self.plan.sample_every - spent, deadline - now)))
        return samples

    async def warm_up(self) -> None:
        self.progress(f"{self.label} msg/s: warming up")
        await self._sample_for(self.plan.warmup, "warmup")

    async def measure(self) -> Step:
        """The measurement window, then each consumer's pause and catch-up."""
        plan, label, active = self.plan, self.label, self.consumers
        self.progress(f"{label} msg/s: measuring {plan.duration:g}s")
        await asyncio.gather(
            self.publisher.call("begin"), *(w.call("begin") for w in active.values())
        )
        pids = {
            "publisher": self.publisher.pid,
            **self.servers,
            **{n: w.pid for n, w in active.items()},
        }
        cpu0 = cpu_now(pids)
        window = [await self._sample("measure")]
        window += await self._sample_for(plan.duration, "measure")
        window.append(await self._sample("measure"))
        ends = await asyncio.gather(
            self.publisher.call("end"), *(w.call("end") for w in active.values())
        )
        cpu1 = cpu_now(pids)

        elapsed = window[-1].t - window[0].t
        used = cores(cpu0, cpu1, elapsed)
        published = window[-1].published - window[0].published
        pub_end = ends[0]
        publisher = PublisherStep(
            achieved_rate=pub_end["acked"] / max(pub_end["elapsed_s"], 1e-9),
            quote_rate=published / elapsed,
            lateness_ms=pub_end["lateness"],
            failed=pub_end["failed"],
            cpu=used["publisher"],
        )
        results: dict[str, ConsumerStep] = {}
        for (name, worker), end in zip(active.items(), ends[1:], strict=True):
            lags = [sample.lags[name] for sample in window]
            results[name] = _consumer_step(
                name, worker, end, lags, elapsed, published, used[name], plan.lag_bound
            )
        kept_up = [n for n, r in results.items() if r.lag is not None and r.lag.kept_up]
        if kept_up and plan.pause > 0:
            self.progress(f"{label} msg/s: pausing {', '.join(kept_up)} {plan.pause:g}s")
            windows = {n: [sample.lags[n] for sample in window] for n in kept_up}
            feed = {n: results[n].feed_rate for n in kept_up}
            for name, catch_up in (await self._pause_and_catch_up(windows, feed)).items():
                results[name].catch_up = catch_up
        for result in results.values():
            caught_up = result.catch_up.caught_up if result.catch_up is not None else None
            result.bounded = bounded(result.lag, caught_up)
        return Step(
            label=label,
            target_rate=self.rate,
            duration_s=elapsed,
            publisher=publisher,
            servers_cpu={name: used[name] for name in self.servers},
            consumers=results,
            timeline=self.timeline,
        )

    async def _pause_and_catch_up(
        self, windows: dict[str, list[Lag]], feed_rates: dict[str, float]
    ) -> dict[str, CatchUp]:
        names = list(windows)
        levels = {n: caught_up_level(windows[n], feed_rates[n]) for n in names}
        await self._sample("pause")  # their positions just before they are frozen
        for name in names:
            self.consumers[name].suspend()
        paused = time.monotonic()
        try:
            await self._sample_for(self.plan.pause, "pause")
            before = await self._sample("pause")
        finally:
            for name in names:
                self.consumers[name].resume()
        resumed = time.monotonic()
        caught: dict[str, Sample] = {}
        deadline = resumed + self.plan.catch_up_timeout
        last = before
        while len(caught) < len(names) and last.t < deadline:
            last = await self._sample("catch-up")
            for name in names:
                if name not in caught and last.lags[name].offset <= levels[name]:
                    caught[name] = last
            await asyncio.sleep(self.plan.catch_up_sample_every)
        out = {}
        for name in names:
            start = before.lags[name]
            end = caught.get(name, last)
            lag = end.lags[name]
            feed_during = (lag.published - start.published) / max(end.t - before.t, 1e-9)
            if name not in caught:
                out[name] = CatchUp(
                    resumed - paused, start.offset, False, None, None, None, feed_during
                )
                continue
            took = end.t - resumed
            rate = (lag.done - start.done) / max(took, 1e-9)
            out[name] = CatchUp(
                pause_s=resumed - paused,
                backlog=start.offset,
                caught_up=True,
                time_s=took,
                rate=rate,
                multiple=rate / feed_rates[name] if feed_rates[name] > 0 else None,
                feed_rate_during=feed_during,
            )
        return out


def _consumer_step(
    name: str,
    worker: Worker,
    end: dict[str, Any],
    lags: list[Lag],
    elapsed: float,
    published: int,
    cpu: float | None,
    lag_bound: float,
) -> ConsumerStep:
    feed_rate = (lags[-1].published - lags[0].published) / elapsed
    counts: dict[str, int] = end["counts"]
    received, decoded = counts.get("received", 0), counts.get("decoded", 0)
    conflated = counts.get("conflated", 0)
    return ConsumerStep(
        consumer=name,
        measured=True,
        consumed_rate=(lags[-1].done - lags[0].done) / elapsed,
        feed_rate=feed_rate,
        latency_ms=end["latency"],
        lag=lag_stats(lags, feed_rate, lag_bound),
        received=received,
        decoded=decoded,
        applied=counts.get("applied", 0),
        conflated=conflated,
        partitions=len(worker.info["partitions"]),
        read_share=read_share(lags[-1].published - lags[0].published, published),
        decoded_share=decoded / received if received and name != "bare" else None,
        conflation=conflated / decoded if decoded and name in CACHING_KINDS else None,
        cpu=cpu,
    )
