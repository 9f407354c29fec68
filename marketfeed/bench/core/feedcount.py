"""How many market-data records the publisher has added, across topic generations.

A benchmark that reports a feed rate cannot subtract two high watermarks of ``md.quotes``: on
the embedded broker the feed rolls to a new generation every few seconds and deletes old ones
(``common.generations``). This samples every generation of each market-data topic in the
background, often enough to see each generation before it is deleted, and keeps a total that
never goes down.
"""

from __future__ import annotations

import asyncio

from common.errors import MarketfeedError
from common.generations.naming import GenerationWatch
from common.kafka import KafkaSettings
from common.lifecycle import Lifecycle, cancel_and_wait
from common.watermarks import WatermarkReader

# A generation lives at least two rolls (seconds on the embedded broker): sampling twice a
# second sees every one of them.
_EVERY_S = 0.5


class FeedCount(Lifecycle):
    def __init__(self, kafka: KafkaSettings, reader: WatermarkReader) -> None:
        self._bases = kafka.topics.market_data
        self._reader = reader
        self._watches = {base: GenerationWatch() for base in self._bases}
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        await self.sample()
        self._task = asyncio.create_task(self._run(), name="bench-feed-count")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def published(self) -> int:
        """Records published so far on every market-data topic, all generations."""
        return sum(watch.published for watch in self._watches.values())

    async def sample(self) -> int:
        """Look now (before reading ``published`` at the end of a window); the total."""
        for base in self._bases:
            self._watches[base].update(await self._reader.generation_marks(base))
        return self.published

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_EVERY_S)
            try:
                await self.sample()
            except MarketfeedError:
                continue  # a broker that does not answer for a moment: the next look counts
