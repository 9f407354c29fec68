"""Exact high watermarks from the embedded broker, including topics created after start."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer, TopicPartition

from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from common.watermarks import WatermarkReader


async def test_exact_high_watermarks_of_a_topic_created_after_the_reader_started(
    kafka: KafkaSettings,
) -> None:
    topic = f"{kafka.topic_prefix}late"
    async with WatermarkReader(kafka.bootstrap) as reader:
        assert await reader.high_watermarks([topic]) == {}
        await ensure_topics(kafka, [TopicSpec(topic, 2)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            # One batch of 7 records: Tansu's ListOffsets alone would say 1.
            batch = producer.create_batch()
            for _ in range(7):
                batch.append(key=b"k", value=b"v", timestamp=None)
            await (await producer.send_batch(batch, topic, partition=1))
        finally:
            await producer.stop()
        marks = await reader.high_watermarks([topic])
    assert marks == {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 7}


async def test_reads_at_once_on_one_reader_each_get_every_partition(kafka: KafkaSettings) -> None:
    # A background sampler and a last look at the end of a benchmark window share one reader;
    # each read reassigns its consumer, so reads must take turns (CI once failed with
    # "Partition is not assigned" when they did not).
    topic = f"{kafka.topic_prefix}shared"
    await ensure_topics(kafka, [TopicSpec(topic, 4)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for partition in range(4):
            batch = producer.create_batch()
            for _ in range(partition + 3):
                batch.append(key=b"k", value=b"v", timestamp=None)
            await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()
    expected = {TopicPartition(topic, p): p + 3 for p in range(4)}
    async with WatermarkReader(kafka.bootstrap) as reader:
        results = await asyncio.gather(*(reader.high_watermarks([topic]) for _ in range(6)))
    assert results == [expected] * 6
