"""Reading the partitions of one market-data topic across its generations, with one consumer.

The one I/O shell every reader of market data uses (the caching consumer, the benchmark's
consumers, the tests' reader of the whole history), so that none re-implements the rule: read a
partition of generation N in order; at its rollover marker, go on with the same partition of
the marker's next generation from offset 0. Partitions switch one by one: a partition may be a
generation ahead of its neighbour for a while.

``fetch()`` hands out each partition's records up to its marker, with the marker apart and the
position after them, and moves the consumer on. Positions are the follower's truth of what was
handed out; the caller places the partitions (``place``), typically from positions it stored.

Ghosts: the embedded broker creates a topic that a client asks metadata of, so a client still
tracking a deleted generation (a consumer that was frozen while it was deleted) brings it back,
empty. A real generation older than the one before the newest always holds its markers, so an
empty partition there is a ghost: ``place`` never starts in one, ``missing`` reports one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.generations.naming import Generations, generation_topic, parse_generation
from common.generations.position import Position
from common.generations.rollover import Chunk, RecordCheck, cut


class Start(StrEnum):
    """A place to start a partition that is not a stored position."""

    BEGINNING = "beginning"  # the first record of the oldest generation still there
    END = "end"  # the end of the newest generation: only what comes from now on


class Follower:
    def __init__(
        self, consumer: AIOKafkaConsumer, base: str, *, check: RecordCheck | None = None
    ) -> None:
        """``check``: whether a marker is authentic (the signed feed); one that is not is
        handed out in its chunk's ``forged`` and never obeyed."""
        self.consumer = consumer
        self.base = base
        self._check = check
        self.positions: dict[int, Position] = {}

    async def existing(self) -> Generations:
        """The generations on the broker now (fresh metadata)."""
        return Generations.from_names(self.base, await self.consumer.topics())

    def topic(self, partition: int) -> TopicPartition:
        """The topic-partition ``partition`` is read from now."""
        return TopicPartition(
            generation_topic(self.base, self.positions[partition].generation), partition
        )

    async def place(self, plan: Mapping[int, Position | Start]) -> dict[int, Position]:
        """Read exactly the partitions of ``plan`` from now on, each from where it says.

        ``Start.BEGINNING`` is the first record of the oldest generation still on the broker,
        ``Start.END`` the end of the newest; with no generation at all, both are offset 0 of
        the plain topic. Returns the positions placed.
        """
        starts = {p: s for p, s in plan.items() if isinstance(s, Start)}
        positions = {p: s for p, s in plan.items() if isinstance(s, Position)}
        if starts:
            positions |= await self._resolve(starts)
        self.positions = dict(sorted(positions.items()))
        await self._assign()
        return dict(self.positions)

    async def _resolve(self, starts: Mapping[int, Start]) -> dict[int, Position]:
        found = await self.existing()
        chain = found.chain or (0,)
        positions: dict[int, Position] = {}
        # From the beginning: the oldest generation that holds something of the partition.
        pending = sorted(p for p, start in starts.items() if start is Start.BEGINNING)
        for generation in chain[:-1]:
            if not pending:
                break
            tps = self._tps(generation, pending)
            ends = await self.consumer.end_offsets(list(tps.values()))
            held = [tp for tp in tps.values() if ends[tp] > 0 or not _ghostly(generation, chain)]
            firsts = await self.consumer.beginning_offsets(held) if held else {}
            for partition, tp in tps.items():
                if tp in firsts:
                    positions[partition] = Position(generation, firsts[tp])
            pending = [p for p in pending if p not in positions]
        newest = chain[-1]
        if pending:
            tps = self._tps(newest, pending)
            firsts = await self.consumer.beginning_offsets(list(tps.values()))
            positions |= {p: Position(newest, firsts[tp]) for p, tp in tps.items()}
        at_end = sorted(p for p, start in starts.items() if start is Start.END)
        if at_end:
            tps = self._tps(newest, at_end)
            lasts = await self.consumer.end_offsets(list(tps.values()))
            positions |= {p: Position(newest, lasts[tp]) for p, tp in tps.items()}
        return positions

    def _tps(self, generation: int, partitions: list[int]) -> dict[int, TopicPartition]:
        # Not assigned: one assignment at the end of place() (see _assign).
        topic = generation_topic(self.base, generation)
        return {p: TopicPartition(topic, p) for p in partitions}

    async def _assign(self) -> None:
        coordinator = getattr(self.consumer, "_coordinator", None)
        known = getattr(coordinator, "ensure_coordinator_known", None)
        if known is not None:
            # A consumer with a group (the cache's, to commit for lag tools): aiokafka's group
            # coordination task fails an assertion, and the consumer with it, when the
            # assignment changes while it looks the coordinator up (at start, or after the
            # broker went away). Once the coordinator is known, it no longer waits there.
            await known()
        tps = {partition: self.topic(partition) for partition in self.positions}
        self.consumer.assign(list(tps.values()))
        for partition, tp in tps.items():
            self.consumer.seek(tp, self.positions[partition].offset)

    async def fetch(self, timeout_ms: int) -> dict[int, Chunk]:
        """The next records of each partition, cut at a marker; positions move past them.

        Raises what ``getmany`` raises (OffsetOutOfRangeError: a position the broker no longer
        has).
        """
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        chunks: dict[int, Chunk] = {}
        for tp, records in batches.items():
            generation = parse_generation(self.base, tp.topic)
            here = self.positions.get(tp.partition)
            if not records or here is None or generation is None or here.generation != generation:
                continue  # read before a re-placement: no longer ours
            chunk = cut(tp.topic, tp.partition, generation, records, self._check)
            self.positions[tp.partition] = chunk.next
            chunks[tp.partition] = chunk
        if any(chunk.marker is not None for chunk in chunks.values()):
            # One new assignment for every partition that crossed a marker in this fetch.
            await self._assign()
        return chunks

    async def missing(self) -> set[int]:
        """Partitions whose generation is gone from the broker (deleted before it was read to
        its marker; or back as an empty ghost): they can only be re-placed, from a snapshot or
        from the beginning."""
        found = await self.existing()
        gone = {p for p, pos in self.positions.items() if pos.generation not in found}
        older = {
            p: self.topic(p)
            for p, pos in self.positions.items()
            if p not in gone and _ghostly(pos.generation, found.chain)
        }
        if older:
            ends = await self.consumer.end_offsets(list(older.values()))
            gone |= {p for p, tp in older.items() if ends[tp] == 0}
        return gone

    def highwater(self, partition: int) -> int | None:
        """The high watermark of the partition's current generation, as the last fetch saw it."""
        if partition not in self.positions:
            return None
        high: int | None = self.consumer.highwater(self.topic(partition))
        return high


def _ghostly(generation: int, chain: Sequence[int]) -> bool:
    """Whether an empty partition of ``generation`` is a ghost: it is two or more behind the
    newest (the one just before the newest may not have its markers yet, during a roll)."""
    return bool(chain) and generation <= chain[-1] - 2
