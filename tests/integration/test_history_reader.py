"""The suite's independent reader of a feed's whole history (tests/history.py), on its own.

The roller creates the next generation's topics ahead of its roll: a feed stopped in between
leaves that generation there, empty. The reader must end at the generation before it, not wait
for a marker that is never coming (it timed out under the suite's load, failing a test that
had nothing wrong).
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from common.kafka import KafkaSettings, TopicSpec, ensure_topics
from tests.history import read_history


async def test_an_empty_next_generation_ends_the_history(kafka: KafkaSettings) -> None:
    base = kafka.topics.quotes
    await ensure_topics(
        kafka,
        [TopicSpec(f"{base}.g1", kafka.partitions), TopicSpec(f"{base}.g2", kafka.partitions)],
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for partition in range(kafka.partitions):
            await producer.send_and_wait(f"{base}.g1", b"v", key=b"AAAA", partition=partition)
    finally:
        await producer.stop()
    history = await read_history(kafka.bootstrap, base, kafka.partitions, timeout=20)
    assert len(history.all()) == kafka.partitions
    assert {r.topic for r in history.all()} == {f"{base}.g1"}
