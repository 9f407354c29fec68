"""Sends what a service could not use to its dead-letter topic, and waits until it is stored.

The consumer only moves past a bad record once its dead letter is acknowledged: nothing is
lost, at worst a record is dead-lettered twice after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.schema import DeadLetter

log = logging.getLogger(__name__)

# Leaves room for the envelope under the 1 MiB default message size of brokers and producers.
MAX_VALUE_BYTES = 512 * 1024


class DeadLetterSink:
    def __init__(self, producer: AIOKafkaProducer, *, topic: str, service: str) -> None:
        self._producer = producer
        self.topic = topic
        self.service = service
        self.sent = 0

    async def send_all(self, letters: list[DeadLetter]) -> None:
        futures = [
            await self._producer.send(self.topic, letter.encode(), key=letter.key)
            for letter in letters
        ]
        await asyncio.gather(*futures)
        self.sent += len(letters)

    async def send_until_stored(self, letters: list[DeadLetter]) -> None:
        """Send, retrying with backoff until acknowledged: the caller moves past the bad
        records only then, so nothing is lost."""
        delay = 0.2
        while True:
            try:
                await self.send_all(letters)
            except KafkaError as exc:
                log.warning("%s: dead-letter send failed (%r); retrying", self.service, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

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
