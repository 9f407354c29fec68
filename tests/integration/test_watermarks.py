"""Exact high watermarks from the embedded broker, including topics created after start."""

from __future__ import annotations

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
