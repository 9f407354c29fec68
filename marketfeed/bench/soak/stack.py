"""What a soak runs, as ``marketfeed up`` runs it, and what it watches that with.

On the run's servers (marketfeed.bench.core.servers) and topics of its own: the publisher,
order_entry (trading the first ``--tradable`` symbols), portfolio (watching the first
``--watchlist``) and the simulated order flow, each a child process launched from its config
(marketfeed.bench.core.children.spawn: every setting a flag, no ``MARKETFEED_*`` from the
shell). Each service runs with its own defaults for everything the soak does not set (linger,
fetch wait, timeouts), so a soak measures what ``up`` runs. Then, in this process, what the
sampler reads: the latency probe (its own cache, on its own Redis), ``marketfeed lag``'s monitor
of the two services and the probe, the reader of order outcomes, and a consumer that lists the
broker's topics (generations). Everything is stopped in reverse order with the exit stack given.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from common.cache import CacheSettings
from common.kafka import KafkaSettings, TopicSpec, ensure_topics, market_data_topics
from common.runtime import ChildProcess
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import universe
from marketfeed.bench.core.children import spawn
from marketfeed.bench.core.clients import feed_fields, open_consumer
from marketfeed.bench.core.progress import Progress
from marketfeed.bench.core.servers import Servers
from marketfeed.bench.soak.generations import GenerationTracker
from marketfeed.bench.soak.orders import OrderOutcomes
from marketfeed.bench.soak.probe import LatencyProbe
from marketfeed.bench.soak.settings import SoakConfig
from marketfeed.lag.monitor import LagMonitor
from marketfeed.targets import Target
from order_entry.config import OrderEntryConfig
from order_flow.config import OrderFlowConfig
from portfolio.config import PortfolioConfig

ORDER_ENTRY, PORTFOLIO, PROBE = "order_entry", "portfolio", "probe"
# Each keeps a cache in a Redis of its own (or under a prefix of its own in a given one).
CACHES = (ORDER_ENTRY, PORTFOLIO, PROBE)
# order_entry takes about a second to leave its group; past this a child is killed.
_STOP_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Watched:
    """Everything the sampler reads, started and owned by the exit stack of :func:`start`."""

    children: dict[str, ChildProcess]
    pids: dict[str, int | None]  # every process whose memory and CPU are sampled
    probe: LatencyProbe
    monitor: LagMonitor
    outcomes: OrderOutcomes
    lister: AIOKafkaConsumer  # lists the broker's topics
    generations: GenerationTracker
    bootstrap: str


def _where(kafka: KafkaSettings) -> dict[str, Any]:
    # Only where the topics are: each child keeps its own defaults for the rest (its connect
    # timeout too: a long-lived service rides out a broker stall longer than a benchmark).
    return {
        "bootstrap": kafka.bootstrap,
        "topic_prefix": kafka.topic_prefix,
        "partitions": kafka.partitions,
    }


def _fetch_wait(config: SoakConfig) -> dict[str, Any]:
    return {"fetch_max_wait_ms": config.fetch_max_wait_ms} if config.fetch_max_wait_ms else {}


def launches(
    config: SoakConfig, kafka: KafkaSettings, servers: Servers, prefix: str, tradable_file: Path
) -> list[tuple[str, str, Any]]:
    """(name, module, config) of each child, in start order."""
    where = _where(kafka)
    order_entry = OrderEntryConfig(
        **where,
        **feed_fields(),
        **_fetch_wait(config),
        redis_url=servers.redis_urls[ORDER_ENTRY],
        redis_prefix=f"{prefix}{ORDER_ENTRY}:",
        tradable_file=tradable_file,
    )
    publisher = PublisherConfig(
        **where, **feed_fields(), symbols=config.symbols, rate=config.rate, seed=config.seed
    )
    portfolio = PortfolioConfig(
        **where,
        **feed_fields(),
        **_fetch_wait(config),
        redis_url=servers.redis_urls[PORTFOLIO],
        redis_prefix=f"{prefix}{PORTFOLIO}:",
        watchlist=tuple(universe(min(config.watchlist, config.symbols))),
    )
    # It trades order_entry's tradable set, priced from order_entry's cache, and its bad
    # orders are bad by order_entry's own limits (as `up` runs it).
    flow = OrderFlowConfig(
        **where,
        orders_rate=config.orders_rate,
        accounts=config.accounts,
        seed=config.seed,
        tradable_file=tradable_file,
        redis_url=order_entry.redis_url,
        redis_prefix=order_entry.redis_prefix,
        max_qty=order_entry.max_qty,
        limit_band=order_entry.limit_band,
    )
    return [
        ("publisher", "feed_publisher", publisher),
        (ORDER_ENTRY, "order_entry", order_entry),
        (PORTFOLIO, "portfolio", portfolio),
        ("order_flow", "order_flow", flow),
    ]


async def start(
    stack: contextlib.AsyncExitStack,
    config: SoakConfig,
    servers: Servers,
    prefix: str,
    files: Path,
    progress: Progress,
) -> Watched:
    """Start the stack and what watches it; ``files``: where logs and the tradable list go."""
    kafka = KafkaSettings(
        bootstrap=servers.bootstrap,
        topic_prefix=prefix,
        partitions=config.partitions,
        connect_timeout=config.connect_timeout,
    )
    topics = kafka.topics
    # The order topics too, as `up` does: the outcome reader reads orders.events from the start.
    await ensure_topics(
        kafka,
        [
            *market_data_topics(kafka),
            TopicSpec(topics.orders_commands, config.partitions),
            TopicSpec(topics.orders_events, config.partitions),
        ],
    )
    tradable = universe(min(config.tradable, config.symbols))
    tradable_file = files / "tradable.txt"
    tradable_file.write_text("\n".join(tradable) + "\n")
    children: dict[str, ChildProcess] = {}
    for name, module, child in launches(config, kafka, servers, prefix, tradable_file):
        progress(f"starting {name}")
        children[name] = await spawn(
            stack,
            name=name,
            module=module,
            config=child,
            log_path=files / f"{name}.log",
            stop_timeout=_STOP_TIMEOUT_S,
        )
    progress("starting the latency probe, lag monitor and readers")
    probe = LatencyProbe(
        CacheSettings(
            **_where(kafka),
            **feed_fields(),
            **_fetch_wait(config),
            redis_url=servers.redis_urls[PROBE],
            redis_prefix=f"{prefix}{PROBE}:",
        ),
        tradable,
    )
    await stack.enter_async_context(probe)
    targets = [
        Target(
            service=name,
            bootstrap=servers.bootstrap,
            redis_url=servers.redis_urls[name],
            redis_prefix=f"{prefix}{name}:",
            topic_prefix=prefix,
            partitions=config.partitions,
        )
        for name in CACHES
    ]
    monitor = LagMonitor(targets, worst=0, connect_timeout=config.connect_timeout)
    await stack.enter_async_context(monitor)
    outcomes = await stack.enter_async_context(OrderOutcomes(kafka))
    lister = await open_consumer(
        stack,
        bootstrap=servers.bootstrap,
        client_id="soak-topics",
        fetch_max_wait_ms=100,
        connect_timeout=config.connect_timeout,
    )
    pids = {
        **servers.pids(lambda service: f"redis {service}"),
        **{name: child.pid for name, child in children.items()},
        "soak (probe)": os.getpid(),
    }
    return Watched(
        children=children,
        pids=pids,
        probe=probe,
        monitor=monitor,
        outcomes=outcomes,
        lister=lister,
        generations=GenerationTracker(topics.quotes),
        bootstrap=servers.bootstrap,
    )
