"""The publisher against the real embedded broker: every record arrives, decoded, in place."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.schema import Quote, Trade, decode
from common.watermarks import WatermarkReader
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from tests.helpers import spawn


async def _read_all(
    bootstrap: str, topics: tuple[str, ...], partitions: int, expected: int
) -> list[tuple[int, bytes, bytes]]:
    """Read ``expected`` records from the start of every partition of ``topics``, then check
    that nothing more is there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes, bytes]] = []
        async with asyncio.timeout(30):
            while len(out) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    out.extend((tp.partition, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    async with WatermarkReader(bootstrap) as reader:
        assert sum((await reader.high_watermarks(topics)).values()) == len(out)
    return out


async def test_published_records_arrive_decoded_in_order_and_in_their_partition(
    kafka: KafkaSettings,
) -> None:
    config = PublisherConfig(
        bootstrap=kafka.bootstrap,
        topic_prefix=kafka.topic_prefix,
        partitions=kafka.partitions,
        symbols=200,
        rate=20_000,
        seed=7,
        duration=1.0,
    )
    async with Publisher(config) as publisher:
        await publisher.run(asyncio.Event())
    stats = publisher.stats()
    assert stats.failed == 0
    assert stats.acked == stats.sent == stats.generated > 5_000

    # Everything acknowledged is on the broker, and nothing else.
    records = await _read_all(
        kafka.bootstrap, kafka.topics.market_data, kafka.partitions, stats.acked
    )

    last_seq: dict[tuple[type, str], int] = defaultdict(int)
    for partition, key, value in records:
        message = decode(value)
        assert isinstance(message, (Quote, Trade))
        assert key == message.symbol.encode()
        assert partition == partition_for(message.symbol, kafka.partitions)
        assert message.epoch == publisher.epoch
        # Within a partition records are read in offset order: per-symbol seq must step by 1.
        assert message.seq == last_seq[(type(message), message.symbol)] + 1
        last_seq[(type(message), message.symbol)] = message.seq
    assert sum(1 for (kind, _) in last_seq if kind is Quote) > 150


async def test_unreachable_broker_gives_one_line_and_exit_1() -> None:
    proc = await spawn(
        sys.executable,
        "-m",
        "feed_publisher",
        "--bootstrap",
        "127.0.0.1:9",
        "--connect-timeout",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.startswith("feed_publisher:")]
    assert len(lines) == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in lines[0]
    assert "Traceback" not in err.decode()
