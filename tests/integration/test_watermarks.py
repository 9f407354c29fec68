"""Exact high watermarks from the embedded broker, including topics created after start."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.cluster import ClusterMetadata

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


async def test_a_topic_deleted_under_a_read_is_left_out_not_waited_for(
    kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The publisher deletes an old generation every few seconds; one can go between the
    # metadata that named it and the ListOffsets. aiokafka retried such a partition for 40 s
    # and failed the whole read (bench consumers died on "cannot read offsets").
    kept, gone = f"{kafka.topic_prefix}kept", f"{kafka.topic_prefix}gone"
    await ensure_topics(kafka, [TopicSpec(kept, 1), TopicSpec(gone, 16)])
    async with WatermarkReader(kafka.bootstrap) as reader:
        reader.list_attempt_s = 0.5
        assert len(await reader.high_watermarks([kept, gone])) == 17  # its client knows both
        client = reader._started()._client
        named_both = await client.fetch_all_metadata()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([gone])
        finally:
            await admin.close()
        # Its client's own view learns that the topic is gone (as it does whenever a new
        # generation makes it refresh). Asking metadata of it then re-creates it on the
        # embedded broker, empty and with fewer partitions, and aiokafka retried the partition
        # that is still missing.
        await client.force_metadata_update()
        fresh = client.fetch_all_metadata
        calls = []

        async def stale_first() -> ClusterMetadata:
            calls.append(1)
            return named_both if len(calls) == 1 else await fresh()

        monkeypatch.setattr(client, "fetch_all_metadata", stale_first)
        marks = await reader.high_watermarks([kept, gone])
    assert marks[TopicPartition(kept, 0)] == 0
    # Of the re-created topic, only what exists now (the bench's generations have 16).
    assert TopicPartition(gone, 15) not in marks
