"""What a caching consumer connects to, opened in order into the consumer's resources.

Its Redis (``QuoteStore``), its dead-letter topic, the Kafka consumer that reads the quote
partitions across generations (``Follower``) and commits for lag tools, and the snapshot client
that fills it (``Filler``). Each is registered for closing before it starts, so a start that
fails half-way closes what it had opened; they close newest first.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from common.cache.batch import Version
from common.cache.commits import OffsetCommitter
from common.cache.deadletters import LETTER_MAX_BYTES, DeadLetterSink, dead_letter_topic
from common.cache.filling import Filler, WithRedis
from common.cache.keys import CacheKeys
from common.cache.settings import CacheSettings
from common.cache.snapshots import GapRequests, SnapshotClient
from common.cache.store import QuoteStore
from common.feedsign import FeedTrust
from common.generations.follower import Follower
from common.generations.rollover import KafkaRecord
from common.kafka import (
    close_consumer,
    close_producer,
    ensure_topics,
    market_data_topics,
    start_producer,
    with_backoff,
)
from common.kafkasec import connection

_GAP_SNAPSHOT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class CacheParts:
    store: QuoteStore
    dead: DeadLetterSink
    follower: Follower
    committer: OffsetCommitter
    filler: Filler


async def open_parts(
    settings: CacheSettings,
    resources: contextlib.AsyncExitStack,
    *,
    service: str,
    group_id: str,
    with_redis: WithRedis,
    versions: dict[str, Version],
    counts: Counter[str],
    trust: FeedTrust,
) -> CacheParts:
    """Connect to Redis and the broker; what is opened goes into ``resources``."""
    s = settings
    client = aioredis.Redis.from_url(
        s.redis_url, socket_connect_timeout=2, socket_timeout=5, retry_on_timeout=False
    )
    resources.push_async_callback(client.aclose)
    store = QuoteStore(client, CacheKeys(s.redis_prefix))
    dead_letters = s.topics.dead_letter(service)
    await ensure_topics(s, [dead_letter_topic(dead_letters)])
    producer = await start_producer(
        s, client_id=f"{service}-cache", max_request_size=LETTER_MAX_BYTES
    )
    resources.push_async_callback(close_producer, producer)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap,
        # The group is only for committing applied offsets where lag tools look for them;
        # partitions are assigned by hand, so the consumer never joins it.
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        client_id=f"{service}-cache",
        **connection(s),
    )
    # Registered before it starts: one that fails to start must be closed all the same.
    resources.push_async_callback(close_consumer, consumer)
    await with_backoff(
        "cache consumer",
        consumer.start,
        bootstrap=s.bootstrap,
        timeout=s.connect_timeout,
        security=s,
    )
    base = s.topics.quotes

    def authentic(record: KafkaRecord) -> str | None:
        return trust.signature_reason(base, record)

    follower = Follower(consumer, base, check=authentic)
    if not (await follower.existing()).numbers:
        # Nothing published here yet: read the plain topic, which a publisher starting later
        # closes with markers pointing to its first generation.
        await ensure_topics(s, market_data_topics(s))
    committer = OffsetCommitter(
        consumer,
        positions=lambda: {follower.topic(p): pos.offset for p, pos in follower.positions.items()},
        interval=s.commit_interval,
        counts=counts,
        service=service,
    )
    resources.push_async_callback(committer.close)
    dead = DeadLetterSink(producer, topic=dead_letters, service=service)
    snapshots = await resources.enter_async_context(
        SnapshotClient(s, producer, service=service, trust=trust, dead=dead)
    )
    gaps = GapRequests(snapshots, timeout=s.snapshot_timeout, every=_GAP_SNAPSHOT_EVERY_S)
    resources.push_async_callback(gaps.close)
    filler = Filler(
        service=service,
        snapshots=snapshots,
        gaps=gaps,
        store=store,
        with_redis=with_redis,
        versions=versions,
        counts=counts,
        timeout=s.snapshot_timeout,
    )
    return CacheParts(
        store=store,
        dead=dead,
        follower=follower,
        committer=committer,
        filler=filler,
    )
