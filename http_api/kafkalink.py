"""The API's link to the broker: a producer, the order index and a snapshot client.

Connected in the background, retried until it works (one log line when the broker is away,
one when it is back), so that the API starts and serves what the caches hold while the broker
is away: a read from a cache needs no broker. Until then, what needs the broker answers 503
(``require()``). A broker that answers but whose topics do not fit the configuration (another
partition count) is not retried: ``failed`` holds the error and ``wait()`` raises it, which
stops the API with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.cache.snapshots import Snapshot, SnapshotClient
from common.errors import BrokerUnavailableError, ConfigError
from common.feedsign import FeedTrust
from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.kafkasec import connection
from common.lifecycle import Lifecycle, cancel_and_wait
from common.retry import Backoff, Retry
from http_api.orderindex import OrderIndex

log = logging.getLogger("http_api.kafka")

# The snapshot replies of the API come on a reply topic of its own.
SNAPSHOT_SERVICE = "api"


class KafkaLink(Lifecycle):
    def __init__(
        self, settings: KafkaSettings, *, orders_kept: int, trust: FeedTrust | None = None
    ) -> None:
        """``trust``: what a snapshot reply must be (signed by the feed's key); None: no
        snapshots are fetched (a reply could not be told from a forged one)."""
        self.settings = settings
        self.trust = trust
        self.orders = OrderIndex(settings, kept=orders_kept)
        self.ready = asyncio.Event()
        self.failed: ConfigError | None = None
        self._failed = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._snapshots: SnapshotClient | None = None
        self._retry = Retry(
            f"api: Kafka at {settings.bootstrap}",
            errors=(BrokerUnavailableError, KafkaError, OSError),
            backoff=Backoff(first=0.5, most=5.0),
            logger=log,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def retry(self) -> Retry:
        """The state of the broker connection (``failing``, ``failures``): for metrics."""
        return self._retry

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="api-kafka-link")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.ready.clear()
        self._producer = self._snapshots = None
        await super().stop()

    async def wait(self) -> None:
        """Until the link fails for good (raises why); a broker away is not that."""
        await self._failed.wait()
        assert self.failed is not None
        raise self.failed

    @property
    def producer(self) -> AIOKafkaProducer:
        self.require()
        assert self._producer is not None
        return self._producer

    def require(self) -> None:
        """BrokerUnavailableError unless connected."""
        if self.failed is not None:
            raise BrokerUnavailableError(str(self.failed))
        if not self.ready.is_set():
            state = "unavailable" if self._retry.failing else "still connecting"
            raise BrokerUnavailableError(f"Kafka at {self.settings.bootstrap} is {state}")

    async def snapshot(self, symbols: list[str], timeout: float) -> Snapshot | None:
        """The publisher's snapshot of ``symbols``; None without a broker or an answer."""
        if not self.ready.is_set() or self._snapshots is None:
            return None
        return await self._snapshots.request(symbols, timeout)

    async def _connect(self) -> None:
        try:
            await self._retry.run(self._open, what="connecting")
        except ConfigError as exc:
            log.error("%s", exc)  # noqa: TRY400 (one line: a config error, not a bug)
            self.failed = exc
            self._failed.set()
            return
        self.ready.set()
        log.info("connected to Kafka at %s", self.settings.bootstrap)

    async def _open(self) -> None:
        """One attempt at everything; what it opened is closed again if it fails half-way."""
        s = self.settings
        async with contextlib.AsyncExitStack() as attempt:
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap,
                acks="all",
                linger_ms=1,
                client_id="marketfeed-api",
                request_timeout_ms=int(s.connect_timeout * 1000),
                **connection(s),
            )
            attempt.push_async_callback(producer.stop)
            # One plain attempt: the retry around it logs once, not once per inner backoff.
            await producer.start()
            topics = s.topics
            await ensure_topics(
                s,
                [
                    TopicSpec(topics.orders_commands, s.partitions),
                    TopicSpec(topics.orders_events, s.partitions),
                ],
            )
            await attempt.enter_async_context(self.orders)
            snapshots = None
            if self.trust is not None:
                snapshots = SnapshotClient(s, producer, service=SNAPSHOT_SERVICE, trust=self.trust)
                await attempt.enter_async_context(snapshots)
            self.resources.push_async_callback(attempt.pop_all().aclose)
        self._producer, self._snapshots = producer, snapshots
