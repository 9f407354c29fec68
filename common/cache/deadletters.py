"""Sends what a service could not use to its dead-letter topic, and waits until it is stored.

The consumer only moves past a bad record once its dead letter is acknowledged: nothing is
lost, at worst a record is dead-lettered twice after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.cache.batch import Rejected
from common.kafka import TopicSpec
from common.retry import Backoff, Retry
from common.schema import DeadLetter

log = logging.getLogger(__name__)

# A dead letter keeps the original bytes: a record that a broker with the default limits
# accepted (message.max.bytes, 1 MiB) is kept whole. Only a larger one (a topic whose limit was
# raised) is cut, and its reason says where the original is. The letter's producer and topic
# allow the value plus its envelope (LETTER_MAX_BYTES), above the 1 MiB defaults of both.
MAX_VALUE_BYTES = 1024 * 1024
LETTER_MAX_BYTES = 2 * 1024 * 1024
# A reason is a line for people: an error quoting a huge value is cut.
MAX_REASON_CHARS = 2000


def dead_letter_topic(name: str) -> TopicSpec:
    """The dead-letter topic ``name`` as created: one partition, room for a whole letter."""
    return TopicSpec(name, 1, (("max.message.bytes", str(LETTER_MAX_BYTES)),))


class DeadLetterSink:
    def __init__(self, producer: AIOKafkaProducer, *, topic: str, service: str) -> None:
        self._producer = producer
        self.topic = topic
        self.service = service
        self._retry = Retry(
            f"{service}: dead-letter topic {topic}",
            errors=(KafkaError,),
            backoff=Backoff(first=0.2, most=5.0),
            logger=log,
        )

    async def send_all(self, letters: list[DeadLetter]) -> None:
        futures = [
            await self._producer.send(self.topic, letter.encode(), key=letter.key)
            for letter in letters
        ]
        await asyncio.gather(*futures)

    async def send_until_stored(self, letters: list[DeadLetter]) -> None:
        """Send, retrying with backoff until acknowledged: the caller moves past the bad
        records only then, so nothing is lost."""
        await self._retry.run(lambda: self.send_all(letters), what="dead-lettering")

    async def store_rejected(self, source_topic: str, rejected: Iterable[Rejected]) -> None:
        """Dead-letter records of ``source_topic`` that could not be used; returns once they
        are stored (the caller commits past them only then)."""
        records = list(rejected)
        letters = [
            self.letter(
                source_topic=r.topic or source_topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
                reason=r.reason,
            )
            for r in records
        ]
        await self.send_until_stored(letters)
        for r in records:
            log.warning(
                "%s: dead-lettered %s[%d]@%d: %s",
                self.service,
                r.topic or source_topic,
                r.partition,
                r.offset,
                r.reason,
            )

    def letter(
        self,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> DeadLetter:
        reason = reason[:MAX_REASON_CHARS]
        if value is not None and len(value) > MAX_VALUE_BYTES:
            # The letter must fit in one request, and the original is still where it says.
            reason = (
                f"{reason} (value truncated from {len(value):,} bytes; the original is at "
                f"{source_topic}[{partition}]@{offset})"
            )
            value = value[:MAX_VALUE_BYTES]
        return DeadLetter(
            service=self.service,
            reason=reason,
            topic=source_topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            ts_ns=time.time_ns(),
        )
