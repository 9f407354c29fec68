"""Where a publisher starts in generations mode: a new generation, every older one closed.

A publisher can die anywhere: between a marker and the next generation's first record, half-way
through writing the markers of a roll, with records of a partition held. A restarted one (it
has a new epoch anyway) therefore always starts a new generation, numbered after the newest on
the broker, after making sure that every partition of every older generation still there ends
with a marker naming its successor (the next generation there, or the new one): a reader
anywhere in the old ones follows the chain to the new one, and sees no regression ((epoch, seq)
orders a new epoch after the old). The plain topic (generation 0), if it exists, is closed the
same way: consumers that started before any publisher read it.

A partition whose last record cannot be read in time is given a marker all the same: a second
marker is harmless, as readers switch at the first and never read past it.
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from common.errors import BrokerUnavailableError
from common.generations.naming import Generations
from common.kafka import close_consumer, create_topics, market_data_topics, with_backoff
from common.kafkasec import connection
from common.schema import ROLLOVER_KEY
from feed_publisher.config import PublisherConfig
from feed_publisher.roller import mark
from feed_publisher.sink import BatchSink

log = logging.getLogger(__name__)

_READ_ENDS_S = 5.0


async def open_generation(
    config: PublisherConfig, admin: AIOKafkaAdminClient, sink: BatchSink, *, epoch: int
) -> int:
    """Create the generation this publisher writes and close every older one; its number."""
    try:
        names = await admin.list_topics()
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot list topics on {config.bootstrap}: {exc}") from None
    found = [Generations.from_names(base, names) for base in config.topics.market_data]
    generation = max((g for f in found for g in f.numbers), default=0) + 1
    await create_topics(admin, config, market_data_topics(config, generation))
    older = {
        TopicPartition(f.topic(g), p): (f, g)
        for f in found
        for g in f.numbers
        for p in range(config.partitions)
    }
    closed = await _ending_with_markers(config, list(older))
    for tp, (f, g) in older.items():
        if tp in closed:
            continue
        later = [n for n in f.numbers if n > g]
        mark(
            sink,
            base=f.base,
            generation=g,
            following=later[0] if later else generation,
            partitions=range(tp.partition, tp.partition + 1),
            epoch=epoch,
        )
    left_open = len(older) - len(closed)
    if older:
        log.info(
            "starting generation %d; closed %d partitions left open in generations %s",
            generation,
            left_open,
            sorted({g for _, g in older.values()}),
        )
    return generation


async def _ending_with_markers(
    config: PublisherConfig, tps: list[TopicPartition]
) -> set[TopicPartition]:
    """The partitions of ``tps`` whose last record is a rollover marker."""
    if not tps:
        return set()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap,
        enable_auto_commit=False,
        client_id="feed_publisher",
        **connection(config),
    )
    try:
        await with_backoff(
            "closing generations",
            consumer.start,
            bootstrap=config.bootstrap,
            security=config,
            timeout=config.connect_timeout,
        )
        consumer.assign(tps)
        # ListOffsets: the high watermark, or (on the embedded broker) one past the start of
        # the last record batch; from there the last batch is read to the partition's end.
        listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        pending = {tp for tp, end in listed.items() if end > 0}
        for tp in pending:
            consumer.seek(tp, listed[tp] - 1)
        last: dict[TopicPartition, bytes | None] = {}
        deadline = time.monotonic() + _READ_ENDS_S
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=100)
            for tp, records in batches.items():
                if records:
                    last[tp] = records[-1].key
            for tp in list(pending):
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    pending.discard(tp)
        return {tp for tp, key in last.items() if key == ROLLOVER_KEY and tp not in pending}
    except KafkaError as exc:
        log.warning("could not read where old generations end (%r); closing them all", exc)
        return set()
    finally:
        await close_consumer(consumer)
