"""The publisher against the real embedded broker: every record arrives, decoded, in place."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict

from common.kafka import KafkaSettings
from common.partitioner import partition_for
from common.schema import Quote, Trade, decode
from feed_publisher.config import PublisherConfig
from feed_publisher.publisher import Publisher
from tests.feedkey import FEED_KEY
from tests.helpers import communicate, spawn
from tests.history import read_history


async def _read_all(kafka: KafkaSettings, expected: int) -> list[tuple[int, bytes, bytes]]:
    """Every record of both market-data topics, across generations; check there are
    ``expected`` of them besides the rollover markers."""
    out: list[tuple[int, bytes, bytes]] = []
    markers = 0
    for base in kafka.topics.market_data:
        history = await read_history(kafka.bootstrap, base, kafka.partitions)
        out.extend((r.partition, r.key, r.value) for r in history.all())
        markers += sum(len(m) for m in history.markers.values())
    assert len(out) + markers == expected
    return out


async def test_published_records_arrive_decoded_in_order_and_in_their_partition(
    kafka: KafkaSettings,
) -> None:
    config = PublisherConfig(
        feed_key=FEED_KEY,
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
    records = await _read_all(kafka, stats.acked)

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
        env={**os.environ, "MARKETFEED_FEED_KEY": FEED_KEY},
    )
    _, err = await communicate(proc)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.startswith("feed_publisher:")]
    assert len(lines) == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in lines[0]
    assert "Traceback" not in err.decode()
