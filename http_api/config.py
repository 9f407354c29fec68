"""Settings of the HTTP API: ``MARKETFEED_*`` environment variables, overridden by flags.

Where the broker and the caches are: the flags, else the running ``marketfeed up`` (its
``up.json``), as for the read commands. With ``--bootstrap`` the running up is not consulted:
a service whose Redis is not given (``--order-entry-redis-url``, ``--portfolio-redis-url``, or
``--redis-url`` for both) is then not served (its endpoints answer 503). A frozen settings
dataclass, so that ``up`` can launch the API with ``common.config.to_argv``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from common.config import in_range, known_log_level, positive, setting
from common.config import redis_url as a_redis_url
from common.errors import ConfigError
from common.feedsign import FeedKeySettings
from common.kafka import KafkaSettings
from common.kafkasec import security_fields
from marketfeed.state import load_state
from marketfeed.targets import SERVICES, BrokerSettings, Target

ORDER_ENTRY, PORTFOLIO = SERVICES


def long_enough(value: object) -> str | None:
    # Guessing is the attack a token has to withstand: 16 characters of a random token at least.
    return None if isinstance(value, str) and len(value) >= 16 else "must be 16 characters or more"


def port_number(value: object) -> str | None:
    return None if isinstance(value, int) and 0 <= value < 65536 else "must be 0..65535"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig(FeedKeySettings, BrokerSettings):
    """The API's settings. Its feed key only checks the snapshots it fetches from the
    publisher for a cold cache (the signed feed); without one, the key of the running `up`,
    else no fetching."""

    host: str = setting(
        "127.0.0.1",
        help="address to listen on; other than loopback only with --api-token (anyone who "
        "reaches it could place orders)",
    )
    port: int = setting(8000, help="port to listen on; 0 picks a free one", check=port_number)
    api_token: str | None = setting(
        None,
        help="token every request must carry (Authorization: Bearer, or the cookie of "
        "/login?token=); none: no authentication, for a machine whose users are all trusted",
        secret=True,
        metavar="TOKEN",
        check=long_enough,
    )
    redis_url: str | None = setting(
        None,
        help="Redis of both services' caches (when they share one)",
        check=a_redis_url,
        secret=True,
    )
    order_entry_redis_url: str | None = setting(
        None,
        help="Redis of order_entry's cache (default: --redis-url, else `up`)",
        check=a_redis_url,
        secret=True,
    )
    order_entry_redis_prefix: str = setting("mf:", help="key prefix of order_entry's cache")
    portfolio_redis_url: str | None = setting(
        None,
        help="Redis of portfolio's cache (default: --redis-url, else `up`)",
        check=a_redis_url,
        secret=True,
    )
    portfolio_redis_prefix: str = setting("mf:", help="key prefix of portfolio's cache")
    stale_after: float = setting(
        5.0, help="seconds after which a quote is marked stale", check=positive
    )
    snapshot_timeout: float = setting(
        3.0,
        help="seconds to wait for the publisher's snapshot of symbols a cold cache lacks",
        check=positive,
    )
    order_timeout: float = setting(
        10.0,
        help="seconds POST /v1/orders waits for the outcome before answering 202 (pending)",
        check=positive,
    )
    orders_kept: int = setting(
        50_000, help="orders of the event log kept in memory for GET /v1/orders", check=positive
    )
    stream_max_rate: float = setting(
        20.0,
        help="most updates a second one stream client gets (?max_rate is capped here)",
        check=in_range(0.1, 1000.0),
    )
    stream_max_clients: int = setting(
        2000, help="concurrent stream clients; more get 503", check=positive
    )
    max_symbols: int = setting(500, help="most symbols one request may name", check=positive)
    lag_interval: float = setting(
        1.0, help="seconds between the lag samples behind GET /v1/lag", check=positive
    )
    lag_history: float = setting(
        600.0, help="seconds of lag samples kept for the dashboard's chart", check=positive
    )
    connect_timeout: float = setting(
        5.0,
        help="seconds one attempt to reach the broker may take (the API retries in the "
        "background and answers 503 meanwhile)",
        check=positive,
    )
    log_level: str = setting("INFO", help="log level", check=known_log_level)

    def resolve(self) -> Resolved:
        """Where the broker and each served cache are: the flags, else the running up."""
        if self.api_token is None and not _loopback(self.host):
            raise ConfigError(
                f"--host={self.host} without --api-token: anyone who reaches it could place "
                "orders; give a token (MARKETFEED_API_TOKEN or MARKETFEED_API_TOKEN_FILE)"
            )
        bootstrap, topic_prefix, partitions = self.resolve_broker()
        security = self.resolve_security()
        up_redis = load_state().redis if self.bootstrap is None else {}
        given = {ORDER_ENTRY: self.order_entry_redis_url, PORTFOLIO: self.portfolio_redis_url}
        prefixes = {
            ORDER_ENTRY: self.order_entry_redis_prefix,
            PORTFOLIO: self.portfolio_redis_prefix,
        }
        caches = {}
        for service in SERVICES:
            url = given[service] or self.redis_url or up_redis.get(service)
            if url is not None:
                caches[service] = Target(
                    service=service,
                    bootstrap=bootstrap,
                    redis_url=url,
                    redis_prefix=prefixes[service],
                    topic_prefix=topic_prefix,
                    partitions=partitions,
                    security=security,
                )
        kafka = KafkaSettings(
            bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            partitions=partitions,
            connect_timeout=self.connect_timeout,
            **security_fields(security),
        )
        return Resolved(kafka=kafka, caches=caches)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True, slots=True)
class Resolved:
    kafka: KafkaSettings
    caches: dict[str, Target] = field(default_factory=dict)
