"""What the routes use, owned and started in one place: readers, Kafka link, lag, stream, orders.

Started in this order and stopped in reverse: a ``QuoteReader`` per served cache (redis-py
connects on the first command: a Redis away at start is a 503 later, not a failed start), the
Kafka link (connected in the background), the lag sampler (background too), the quote hub and
the order desk. Nothing here waits for a server that is away.
"""

from __future__ import annotations

from common.cache.reader import QuoteReader
from common.lifecycle import Lifecycle, first_of
from http_api.config import ApiConfig, Resolved
from http_api.errors import ApiError, Reason
from http_api.kafkalink import KafkaLink
from http_api.lag import LagSampler
from http_api.orderdesk import OrderDesk
from http_api.stream import QuoteHub
from marketfeed.readtrust import reader_trust
from marketfeed.targets import SERVICES, Target


class Backend(Lifecycle):
    def __init__(self, config: ApiConfig, resolved: Resolved) -> None:
        self.config = config
        self.caches: dict[str, Target] = dict(resolved.caches)
        self.readers = {
            service: QuoteReader.from_url(
                t.redis_url, prefix=t.redis_prefix, stale_after=config.stale_after
            )
            for service, t in self.caches.items()
        }
        self.kafka = KafkaLink(
            resolved.kafka,
            orders_kept=config.orders_kept,
            trust=reader_trust(key=config.feed_key, key_file=config.feed_key_file),
        )
        self.lag = LagSampler(
            list(self.caches.values()),
            interval=config.lag_interval,
            history_s=config.lag_history,
            connect_timeout=config.connect_timeout,
            broker_ready=self.kafka.ready,
        )
        self.hub = QuoteHub(
            self.readers,
            max_rate=config.stream_max_rate,
            max_clients=config.stream_max_clients,
        )
        self.desk = OrderDesk(self.kafka, timeout=config.order_timeout)

    async def _start(self) -> None:
        for reader in self.readers.values():
            self.resources.push_async_callback(reader.stop)
        await self.resources.enter_async_context(self.kafka)
        await self.resources.enter_async_context(self.lag)
        await self.resources.enter_async_context(self.hub)
        self.resources.push_async_callback(self.desk.close)

    async def wait(self) -> None:
        """Until a part fails for good (raises why)."""
        await first_of(self.kafka.wait())

    def reader(self, service: str) -> QuoteReader:
        """The reader of ``service``'s cache: 400 for a service that does not exist, 503 for
        one this API was not given a Redis for."""
        if service not in SERVICES:
            raise ApiError(
                400, Reason.UNKNOWN_SERVICE, f"no service {service!r}; one of {', '.join(SERVICES)}"
            )
        reader = self.readers.get(service)
        if reader is None:
            raise ApiError(
                503,
                Reason.SERVICE_NOT_CONFIGURED,
                f"this API was given no Redis for {service} (--{service.replace('_', '-')}"
                "-redis-url)",
            )
        return reader

    def prefix(self, service: str) -> str:
        self.reader(service)
        return self.caches[service].redis_prefix
