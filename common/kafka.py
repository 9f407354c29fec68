"""Kafka plumbing shared by every service: connection settings, topic creation, start with backoff.

Only settings and helpers live here; each service owns its own producers and consumers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from common.config import bootstrap_servers, positive, setting
from common.errors import BrokerUnavailableError, ConfigError
from common.generations.naming import generation_topic
from common.kafkasec import PLAINTEXT, KafkaSecurity, connection
from common.lifecycle import cancel_all
from common.retry import Backoff, retry
from common.tlsprobe import tls_refusal
from common.topics import DEFAULT_PARTITIONS, Topics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Kafka's error code for CreateTopics on a topic that exists.
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings(KafkaSecurity):
    """Where the broker is, how to connect to it and how the topics are laid out; every service
    config extends it."""

    bootstrap: str = setting(
        "127.0.0.1:9092",
        help="Kafka bootstrap servers, host:port[,host:port]",
        check=bootstrap_servers,
        metavar="HOST:PORT",
    )
    topic_prefix: str = setting("", help="prefix of every topic name (namespaces a shared broker)")
    partitions: int = setting(
        DEFAULT_PARTITIONS, help="partitions of the quote, trade and order topics", check=positive
    )
    connect_timeout: float = setting(
        20.0, help="seconds to keep retrying an unreachable broker before giving up", check=positive
    )

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)


async def with_backoff(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    bootstrap: str,
    timeout: float,
    first_delay: float = 0.2,
    max_delay: float = 3.0,
    security: KafkaSecurity = PLAINTEXT,
) -> T:
    """Run ``attempt`` until it stops raising connection errors, for at most ``timeout`` seconds.

    The final failure becomes a BrokerUnavailableError with one readable line; one that TLS
    explains (a plaintext client at a TLS listener, a missing client certificate) says so
    rather than "Unable to bootstrap".
    """

    def give_up(exc: BaseException, _spent: float) -> BrokerUnavailableError:
        refusal = tls_refusal(bootstrap, security)
        if refusal is not None:
            return BrokerUnavailableError(f"cannot connect to Kafka ({what}): {refusal}")
        return BrokerUnavailableError(
            f"cannot reach Kafka at {bootstrap} ({what}) after {timeout:.0f}s: {exc}"
        )

    return await retry(
        f"{what}: Kafka at {bootstrap}",
        attempt,
        errors=(KafkaConnectionError, OSError),
        timeout=timeout,
        give_up=give_up,
        backoff=Backoff(first=first_delay, most=max_delay),
        logger=log,
    )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: tuple[tuple[str, str], ...] = ()  # topic configs when created, e.g. retention.ms


def market_data_topics(
    settings: KafkaSettings, generation: int = 0, *, retention_ms: int | None = None
) -> list[TopicSpec]:
    """The market-data topics of ``generation`` (0: the plain names) and the snapshot requests;
    with ``retention_ms``, created with that ``retention.ms`` (a broker that enforces it)."""
    topics = settings.topics
    configs = (("retention.ms", str(retention_ms)),) if retention_ms is not None else ()
    return [
        *(
            TopicSpec(generation_topic(base, generation), settings.partitions, configs)
            for base in topics.market_data
        ),
        TopicSpec(topics.snapshot_requests, 1),
    ]


async def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec]) -> None:
    """Create missing topics; refuse a topic that exists with another partition count.

    A wrong partition count would silently break the symbol -> partition contract, so it is a
    configuration error, not something to paper over.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=10000, **connection(settings)
    )
    try:
        await with_backoff(
            "admin",
            admin.start,
            bootstrap=settings.bootstrap,
            timeout=settings.connect_timeout,
            security=settings,
        )
        await create_topics(admin, settings, specs)
    finally:
        await admin.close()


async def create_topics(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, specs: Iterable[TopicSpec]
) -> None:
    """``ensure_topics`` with an admin client the caller keeps (one that creates topics often)."""
    wanted = {spec.name: spec for spec in specs}
    try:
        response: Any = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.configs))
                for s in wanted.values()
            ]
        )
        for name, code, message in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise ConfigError(f"cannot create topic {name}: error {code} {message or ''}")
        described: Any = await admin.describe_topics(list(wanted))
        for topic in described:
            name = topic["topic"]
            count = len(topic["partitions"])
            if count != wanted[name].partitions:
                raise ConfigError(
                    f"topic {name} has {count} partitions but {wanted[name].partitions} are"
                    " configured (--partitions); use the same count everywhere"
                )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"topic set-up on {settings.bootstrap} failed: {exc}"
        ) from None


async def start_producer(
    settings: KafkaSettings,
    *,
    client_id: str,
    linger_ms: int = 1,
    max_request_size: int = 1024 * 1024,
) -> AIOKafkaProducer:
    """A started acks=all producer; an unreachable broker is retried for --connect-timeout."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=linger_ms,
        client_id=client_id,
        max_request_size=max_request_size,
        **connection(settings),
    )
    try:
        await with_backoff(
            client_id,
            producer.start,
            bootstrap=settings.bootstrap,
            timeout=settings.connect_timeout,
            security=settings,
        )
    except BaseException:
        # The caller never sees this producer, so it cannot close it: an unclosed one would
        # keep its client's connections and warn when collected.
        await producer.stop()
        raise
    return producer


# A client's stop that waits on a broker which does not answer is cut short after this: the
# broker is gone (or frozen), and what the client still held cannot reach it anyway.
_CLOSE_TIMEOUT_S = 3.0


async def close_consumer(
    consumer: AIOKafkaConsumer, *, timeout: float = _CLOSE_TIMEOUT_S, expected: str = ""
) -> None:
    """``consumer.stop()``, bounded: a stop must not hang on a broker that does not answer.

    With a ``group_id``, aiokafka's stop first waits for its group coordination task, which
    waits on requests to the group coordinator; a test run once hung there for minutes on the
    embedded broker. Our group consumers only commit (they never join), so after ``timeout``
    that task is abandoned and the connections are closed all the same.

    Without a group, aiokafka's stop() raises CancelledError when it comes right after start(),
    before the event loop ran the task start() made (the task is cancelled before its first
    step, so nothing catches that). Its fetcher's close() raises one too when a fetch was
    sleeping in its retry backoff (a broker that is gone): it awaits the fetch tasks it has
    just cancelled. Those cancellations are not ours: they are swallowed, and the connections
    stop() did not reach are closed here.

    ``expected``: why a stop cut short is no surprise this time (logged at INFO, not a warning).
    """
    try:
        async with asyncio.timeout(timeout):
            await consumer.stop()
    except TimeoutError:
        level = logging.INFO if expected else logging.WARNING
        why = f" ({expected})" if expected else ""
        log.log(
            level, "a Kafka consumer did not stop within %.1fs%s; closing it anyway", timeout, why
        )
    except asyncio.CancelledError:
        _reraise_if_ours()
    else:
        return
    # stop() has marked the consumer closed; what it did not reach is closed here.
    coordinator = getattr(consumer, "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    if task is not None:
        await cancel_all([task])  # its own error is of no interest to a stop
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        try:
            await fetcher.close()
        except asyncio.CancelledError:
            _reraise_if_ours()
            # It stopped at the first fetch task it awaited; those after it were not cancelled.
            await cancel_all(getattr(fetcher, "_pending_tasks", ()))
    await consumer._client.close()


def _reraise_if_ours() -> None:
    """Inside ``except CancelledError``: re-raise it if the current task is being cancelled."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


async def close_producer(producer: AIOKafkaProducer, *, timeout: float = _CLOSE_TIMEOUT_S) -> None:
    """``producer.stop()``, bounded: it waits until everything sent is acknowledged or expired
    (the request timeout, 40 s), which a broker that is gone never acknowledges.

    After ``timeout`` the connections are closed, which fails what is still in flight, and the
    sending task is ended; what was not acknowledged is lost to this producer, as it would be
    to one that crashed (its sender re-sends or settles it: the ledger, the dead letters).
    """
    try:
        async with asyncio.timeout(timeout):
            await producer.stop()
    except TimeoutError:
        log.warning("a Kafka producer did not flush within %.0fs; closing it anyway", timeout)
    else:
        return
    await producer.client.close()
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None:
        await cancel_all([task])
