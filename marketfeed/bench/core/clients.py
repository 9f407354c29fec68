"""The Kafka clients a benchmark measures with, and the Kafka settings of what it starts.

Its own clients assign partitions themselves (no consumer group, so nothing to join or time
out while a consumer is frozen) and produce with ``acks=all``, as the services do. Each is
started with backoff (an unreachable broker is retried for ``connect_timeout``) and its stop
goes into the owner's ``resources`` *before* it starts, so a start that failed half-way is
stopped too.

The config of each thing a benchmark starts (a child's, a worker's) is a KafkaSettings: it
is laid on the run's broker and topics with ``**kafka_fields(kafka)``, a TypedDict that mypy
checks like the keywords beside it.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TypedDict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from common.feedsign import FeedKeys, FeedTrust, Plausibility, Signer
from common.feedsign.trust import DEFAULT_CLOCK_SKEW_S, DEFAULT_SEQ_JUMP
from common.kafka import KafkaSettings, with_backoff
from common.kafkasec import PLAINTEXT, KafkaSecurity, connection
from marketfeed.bench.core.settings import BenchSettings


class KafkaFields(TypedDict):
    bootstrap: str
    topic_prefix: str
    partitions: int
    connect_timeout: float


def kafka_fields(kafka: KafkaSettings) -> KafkaFields:
    """``kafka``'s settings as keywords of another config (a KafkaSettings too)."""
    return KafkaFields(
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        connect_timeout=kafka.connect_timeout,
    )


class FeedFields(TypedDict):
    feed_key: str | None
    insecure_unsigned_feed: bool


# The run's feed key, as `marketfeed up` makes one: what a benchmark starts signs and verifies
# with it (its children get it through the environment, ``to_env``).
_RUN_KEYS = FeedKeys((secrets.token_bytes(32),))


def feed_fields(*, signed: bool = True) -> FeedFields:
    """The feed-key settings of a publisher or cache a benchmark starts; ``signed=False``
    runs the feed unsigned (to measure what signing costs)."""
    return FeedFields(
        feed_key=_RUN_KEYS.hex() if signed else None, insecure_unsigned_feed=not signed
    )


def run_signer() -> Signer:
    """How the run's publisher signs (to build signed records for a measurement)."""
    return _RUN_KEYS.signer()


def feed_trust() -> FeedTrust:
    """What a benchmark's own reader of the feed accepts (a snapshot client): the run's key."""
    return FeedTrust(_RUN_KEYS.verifier(), Plausibility(DEFAULT_CLOCK_SKEW_S, DEFAULT_SEQ_JUMP))


def kafka_settings(config: BenchSettings, bootstrap: str, prefix: str) -> KafkaSettings:
    """Where the topics under ``prefix`` live, laid out as the benchmark is configured."""
    return KafkaSettings(
        bootstrap=bootstrap,
        topic_prefix=prefix,
        partitions=config.partitions,
        connect_timeout=config.connect_timeout,
    )


async def open_consumer(
    resources: contextlib.AsyncExitStack,
    *,
    bootstrap: str,
    client_id: str,
    fetch_max_wait_ms: int,
    connect_timeout: float,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaConsumer:
    """A started consumer with no group and no auto-commit; it is assigned by the caller."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        client_id=client_id,
        **connection(security),
    )
    resources.push_async_callback(consumer.stop)
    await with_backoff(
        client_id, consumer.start, bootstrap=bootstrap, timeout=connect_timeout, security=security
    )
    return consumer


async def open_producer(
    resources: contextlib.AsyncExitStack,
    *,
    bootstrap: str,
    client_id: str,
    connect_timeout: float,
    linger_ms: int = 1,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaProducer:
    """A started ``acks=all`` producer."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        client_id=client_id,
        **connection(security),
    )
    resources.push_async_callback(producer.stop)
    await with_backoff(
        client_id, producer.start, bootstrap=bootstrap, timeout=connect_timeout, security=security
    )
    return producer
