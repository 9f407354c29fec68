"""Runs a soak: the servers, the stack and its watchers, then the sampling loop; the results.

The embedded broker and one Redis per cache (order_entry, portfolio, the latency probe) unless
``--bootstrap`` / ``--redis-url`` are given; topics and Redis keys under a prefix of the run's
own (marketfeed.bench.core.servers). Ctrl-C and SIGTERM end the sampling, not the process: the
stack is stopped in reverse order, then what was measured is reported and written as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from dataclasses import asdict
from pathlib import Path

from common.cli import install_stop_signals
from marketfeed.bench.core.progress import StepProgress
from marketfeed.bench.core.servers import bench_servers, environment, run_prefix
from marketfeed.bench.soak import report, stack
from marketfeed.bench.soak.results import Run, SoakResults
from marketfeed.bench.soak.sampler import Sampler
from marketfeed.bench.soak.settings import SoakConfig


async def measure(config: SoakConfig, progress: StepProgress) -> Run:
    env = environment(config, embedded_redis="embedded redis-server, one per cache")
    results = SoakResults(
        config={**asdict(config), "out": config.out and str(config.out)}, environment=env
    )
    run = Run(results)
    prefix = run_prefix("soak")
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        async with contextlib.AsyncExitStack() as resources:
            files = (
                config.out / "logs"
                if config.out
                else Path(
                    resources.enter_context(tempfile.TemporaryDirectory(prefix="marketfeed-soak-"))
                )
            )
            files.mkdir(parents=True, exist_ok=True)
            servers = await resources.enter_async_context(
                bench_servers(
                    bootstrap=config.bootstrap,
                    redis_url=config.redis_url,
                    services=stack.CACHES,
                    prefix=prefix,
                    log_dir=files,
                    progress=progress.phase,
                )
            )
            results.environment.update(
                bootstrap=servers.bootstrap, topic_prefix=prefix, redis_urls=servers.redis_urls
            )
            watched = await stack.start(resources, config, servers, prefix, files, progress.phase)
            sampler = Sampler(config, watched, run, progress, report.checkpoint(config.out))
            await sampler.loop(stop)
            progress.phase(f"{results.ended}; stopping")
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    report.conclude(run)
    return run
