"""What ``marketfeed up`` runs besides its servers: each child's module and its config.

Each child's config is built from up's own settings, and from the environment for everything
else: ``MARKETFEED_*`` variables set for ``up`` tune the children (a session timeout, a log
level). What up decides is passed as overrides, which ``build()`` applies before it looks at
the environment: where the broker and caches are, the namespace of the consumer groups, the
sizes up was given (up's ``MARKETFEED_TRADABLE`` and ``MARKETFEED_WATCHLIST`` are counts, the
services' are lists, and are never read as theirs), and no duration for the publisher (up's
``--duration`` is up's own; a publisher stopping by itself would look like a death). Every
child listens on a free loopback port it prints (its ``/metrics``; the API's own port), which
up reads from its log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from common.config import build
from common.exposition import MetricsSettings
from common.feedsign import FeedKeys
from common.kafkasec import KafkaSecurity, security_fields
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import universe
from http_api.config import ApiConfig
from order_entry.config import OrderEntryConfig
from order_flow.config import OrderFlowConfig
from portfolio.config import PortfolioConfig

if TYPE_CHECKING:
    from marketfeed.up import UpConfig

ORDER_FLOW = "order_flow"
API = "api"
# Every child's /metrics: on loopback, a free port each (printed, read back by up).
METRICS: dict[str, Any] = {"metrics_port": "0", "metrics_host": "127.0.0.1"}


@dataclass(frozen=True, slots=True)
class Launch:
    """One child of ``up``: its name (in up.json, and its log file), module and config."""

    name: str
    module: str  # run as ``python -m module``
    config: Any  # a settings dataclass of that module, turned into its flags by to_argv()

    @property
    def has_metrics(self) -> bool:
        """Whether it serves its own /metrics endpoint (the API serves them on its own port)."""
        return isinstance(self.config, MetricsSettings)


class Servers(Protocol):
    """Where the run's servers are (``EmbeddedStack``)."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def security(self) -> KafkaSecurity: ...

    def redis_url(self, service: str) -> str: ...


def children(
    cfg: UpConfig,
    servers: Servers,
    *,
    topic_prefix: str,
    group: str,
    run_dir: Path,
    feed_keys: FeedKeys,
    api_token: str | None = None,
) -> list[Launch]:
    """The children to launch, in start order (writes their tradable file in ``run_dir``).

    The publisher, the caches and the API (to check the snapshots it fetches) get the run's
    ``feed_keys`` (a secret: to_env passes it)."""
    env = os.environ
    broker: dict[str, Any] = {
        "bootstrap": servers.bootstrap,
        "partitions": cfg.partitions,
        # How to reach it (up --tls: the run's CA and client certificate), for every child.
        **security_fields(servers.security),
    }
    kafka = broker | {"topic_prefix": topic_prefix} | METRICS
    feed: dict[str, Any] = {"feed_key": feed_keys.hex(), "insecure_unsigned_feed": False}
    tradable_file = _write_tradable_file(cfg, run_dir)
    order_entry = build(
        OrderEntryConfig,
        environ=env,
        **kafka,
        **feed,
        group=group,
        redis_url=servers.redis_url("order_entry"),
        tradable=(),
        tradable_file=tradable_file,
    )
    publisher = build(
        PublisherConfig,
        environ=env,
        **kafka,
        **feed,
        symbols=cfg.symbols,
        rate=cfg.rate,
        seed=cfg.seed,
        duration=None,
        md_history=cfg.md_history,
    )
    portfolio = build(
        PortfolioConfig,
        environ=env,
        **kafka,
        **feed,
        group=group,
        redis_url=servers.redis_url("portfolio"),
        watchlist=tuple(universe(cfg.watchlist_count)),
        watchlist_file=None,
    )
    launches = [
        Launch("publisher", "feed_publisher", publisher),
        Launch("order_entry", "order_entry", order_entry),
        Launch("portfolio", "portfolio", portfolio),
    ]
    if cfg.orders_rate > 0:
        # It trades order_entry's tradable set, priced from order_entry's cache, and its bad
        # orders are bad by order_entry's own limits.
        flow = build(
            OrderFlowConfig,
            environ=env,
            **kafka,
            orders_rate=cfg.orders_rate,
            accounts=cfg.accounts,
            seed=cfg.seed,
            tradable=(),
            tradable_file=tradable_file,
            redis_url=order_entry.redis_url,
            redis_prefix=order_entry.redis_prefix,
            max_qty=order_entry.max_qty,
            limit_band=order_entry.limit_band,
        )
        launches.append(Launch(ORDER_FLOW, "order_flow", flow))
    # Over the caches and the broker of this run, never another up's (no up.json lookup).
    api = build(
        ApiConfig,
        environ=env,
        **broker,
        # Its optional prefix: "" goes on a command line as an empty value, read back as None.
        topic_prefix=topic_prefix or None,
        host="127.0.0.1",
        port=0,
        api_token=api_token,
        feed_key=feed_keys.hex(),
        redis_url=None,
        order_entry_redis_url=order_entry.redis_url,
        order_entry_redis_prefix=order_entry.redis_prefix,
        portfolio_redis_url=portfolio.redis_url,
        portfolio_redis_prefix=portfolio.redis_prefix,
    )
    launches.append(Launch(API, "http_api", api))
    return launches


def _write_tradable_file(cfg: UpConfig, run_dir: Path) -> Path:
    # A file rather than a flag: the list can be long, and order_entry and the order flow
    # read the same one.
    path = run_dir / "tradable.txt"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(universe(cfg.tradable_count)) + "\n")
    return path
