"""The ceiling: a bare aiokafka consume loop over every quote partition. No decoding, no Redis.

What it measures is what the client library and the broker can deliver on this machine; the
other consumers are compared with it. Its latency is publish -> fetched, from the Kafka record
timestamp (millisecond resolution, so it reads up to 1 ms high), since it decodes nothing.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.topics import Topics
from marketfeed.bench.consumers.roles.base import ConsumerRole, WorkerParams
from marketfeed.bench.consumers.roles.tracking import ConsumerTracker
from marketfeed.bench.core.clients import open_consumer


async def open_at_end(
    params: WorkerParams,
    client_id: str,
    tracker: ConsumerTracker,
    resources: contextlib.AsyncExitStack,
) -> AIOKafkaConsumer:
    """A consumer of every quote partition, positioned at the end (no group: nothing to join).

    Its stop goes in ``resources``.
    """
    consumer = await open_consumer(
        resources,
        bootstrap=params.bootstrap,
        client_id=client_id,
        fetch_max_wait_ms=params.fetch_max_wait_ms,
        connect_timeout=params.connect_timeout,
    )
    topic = Topics(prefix=params.topic_prefix).quotes
    tps = [TopicPartition(topic, p) for p in range(params.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    # The broker's "end" may be a little short of the true end (Tansu's ListOffsets answers the
    # start of the last record batch); the warm-up consumes the difference.
    for tp in tps:
        tracker.positions[tp.partition] = await consumer.position(tp)
    return consumer


class BareRole(ConsumerRole):
    async def _consume(self) -> list[int]:
        consumer = await open_at_end(self.params, "bench-bare", self.tracker, self.resources)
        self._run_loop(self._run(consumer), "bare")
        return list(range(self.params.partitions))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        tracker = self.tracker
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now_ns = time.time_ns()
            for tp, records in batches.items():
                last = records[-1]
                tracker.done(tp.partition, last.offset, last.timestamp)
                tracker.counts["received"] += len(records)
                stamps = np.fromiter((r.timestamp for r in records), np.int64, len(records))
                tracker.latencies_ns(now_ns, stamps * 1_000_000)
