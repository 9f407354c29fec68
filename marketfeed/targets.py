"""Where a read command looks: flags if given, else the running ``marketfeed up``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from common.config import bootstrap_servers, positive, redis_url, setting
from common.errors import ConfigError
from common.kafkasec import PLAINTEXT, KafkaSecurity, security_of
from marketfeed.state import load_state

SERVICES = ("order_entry", "portfolio")
ALL_SERVICES = "all"  # for commands that look at every service at once (``marketfeed lag``)


def known_service(value: object) -> str | None:
    return None if value in SERVICES else f"must be one of {', '.join(SERVICES)}"


def known_service_or_all(value: object) -> str | None:
    if value == ALL_SERVICES:
        return None
    return None if value in SERVICES else f"must be one of {', '.join(SERVICES)}, {ALL_SERVICES}"


def up_services() -> tuple[str, ...]:
    """The services the running ``marketfeed up`` keeps a cache for (StateNotFoundError if none)."""
    return tuple(load_state().redis)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    service: str
    bootstrap: str
    redis_url: str
    redis_prefix: str
    topic_prefix: str
    partitions: int
    security: KafkaSecurity = field(default=PLAINTEXT)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings(KafkaSecurity):
    """Flags of commands that only talk to the broker; each optional when ``up`` is running.

    How to connect (``--security-protocol``...): the flags, else as the running up says
    (``up --tls``: its CA and client certificate), unless ``--bootstrap`` names another broker.
    """

    bootstrap: str | None = setting(
        None,
        help="Kafka bootstrap servers (default: the running `marketfeed up`)",
        check=bootstrap_servers,
        metavar="HOST:PORT",
    )
    topic_prefix: str | None = setting(None, help="topic prefix (default: as `up` runs it)")
    partitions: int | None = setting(
        None, help="quote partitions (default: as `up` runs it)", check=positive
    )

    def resolve_security(self) -> KafkaSecurity:
        if self.bootstrap is not None or self.security_protocol != PLAINTEXT.security_protocol:
            return security_of(self)
        return load_state().security()

    def resolve_broker(self) -> tuple[str, str, int]:
        """Bootstrap, topic prefix and partitions: the flags, or what the running up uses.

        With ``--bootstrap`` the running up is not consulted: the others default to ``""``
        and 16, the defaults of the services themselves.
        """
        if self.bootstrap is not None:
            return self.bootstrap, self.topic_prefix or "", self.partitions or 16
        state = load_state()
        return (
            state.bootstrap,
            state.topic_prefix if self.topic_prefix is None else self.topic_prefix,
            self.partitions or state.partitions,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSettings(BrokerSettings):
    """Flags shared by read commands; each is optional when a ``marketfeed up`` is running."""

    service: str = setting("order_entry", help="whose cache to read", check=known_service)
    redis_url: str | None = setting(
        None,
        help="Redis of the service's cache (default: the running `marketfeed up`)",
        check=redis_url,
        secret=True,
    )
    redis_prefix: str = setting("mf:", help="key prefix of the cache in that Redis")

    def resolve(self) -> Target:
        if self.redis_url and self.bootstrap:
            return Target(
                service=self.service,
                bootstrap=self.bootstrap,
                redis_url=self.redis_url,
                redis_prefix=self.redis_prefix,
                topic_prefix=self.topic_prefix or "",
                partitions=self.partitions or 16,
                security=security_of(self),
            )
        state = load_state()
        url = self.redis_url or state.redis.get(self.service)
        if url is None:
            raise ConfigError(
                f"--service={self.service}: the running `marketfeed up` has no such cache"
            )
        return Target(
            service=self.service,
            bootstrap=self.bootstrap or state.bootstrap,
            redis_url=url,
            redis_prefix=self.redis_prefix,
            topic_prefix=state.topic_prefix if self.topic_prefix is None else self.topic_prefix,
            partitions=self.partitions or state.partitions,
            security=self.resolve_security(),
        )

    def resolve_all(self) -> list[Target]:
        """The caches to read when ``--service all`` is allowed (as in ``marketfeed lag``).

        A named service: that one, as :meth:`resolve`. ``all`` with ``--redis-url``: the one
        cache at that URL (its service is named by the cache's own meta); ``all`` without it:
        every service the running ``marketfeed up`` has.
        """
        if self.service != ALL_SERVICES or self.redis_url:
            return [self.resolve()]
        return [replace(self, service=service).resolve() for service in up_services()]
