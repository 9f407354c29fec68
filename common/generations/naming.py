"""Names of the market-data generations, what a broker holds of them, and the history mode.

No I/O: callers list the broker's topics and hand the names in.

Generation ``N >= 1`` of a base topic ``md.quotes`` is the topic ``md.quotes.gN`` (decimal, not
zero-padded); generation 0 is the plain name, ``md.quotes``, which is what a broker that
enforces retention uses forever, and what consumers read before any publisher has run. When
numbered generations exist, the plain topic is not part of the chain: a publisher that found it
closed it with markers pointing to the first numbered one (``feed_publisher.closing``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from common.errors import ConfigError

# Tansu's default cluster id, which its Metadata answers carry (aiokafka's admin
# describe_cluster()["cluster_id"]). Its memory engine keeps every record for good.
NO_RETENTION_CLUSTER_IDS = frozenset({"tansu_cluster"})


class HistoryMode(StrEnum):
    """How the history of the market-data topics is bounded (the publisher's --md-history)."""

    AUTO = "auto"  # generations on a broker known not to enforce retention, else retention
    GENERATIONS = "generations"  # md.quotes.gN, rolled and deleted by the publisher
    RETENTION = "retention"  # one topic forever; the broker's retention.ms bounds it


def history_mode(value: object) -> str | None:
    """Check of the --md-history setting."""
    names = [m.value for m in HistoryMode]
    return None if value in names else f"must be one of {', '.join(names)}"


def resolve_mode(setting: str, cluster_id: str | None) -> HistoryMode:
    """The mode to publish in: ``setting``, with ``auto`` decided by the broker's cluster id."""
    mode = HistoryMode(setting)
    if mode is not HistoryMode.AUTO:
        return mode
    if cluster_id in NO_RETENTION_CLUSTER_IDS:
        return HistoryMode.GENERATIONS
    return HistoryMode.RETENTION


def generation_topic(base: str, generation: int) -> str:
    """The topic of ``generation`` of ``base``: the plain name for 0, else ``base.gN``."""
    if generation < 0:
        raise ValueError(f"generation {generation} < 0")
    return base if generation == 0 else f"{base}.g{generation}"


def parse_generation(base: str, topic: str) -> int | None:
    """The generation ``topic`` is of ``base``, or None if it is not one of them."""
    if topic == base:
        return 0
    match = re.fullmatch(re.escape(base) + r"\.g([1-9][0-9]*)", topic)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Generations:
    """The generations of one base topic that exist on a broker."""

    base: str
    numbers: tuple[int, ...] = ()  # ascending; 0 is the plain topic

    @classmethod
    def from_names(cls, base: str, names: Iterable[str]) -> Generations:
        found = {parse_generation(base, name) for name in names}
        return cls(base, tuple(sorted(g for g in found if g is not None)))

    def __contains__(self, generation: object) -> bool:
        return generation in self.numbers

    @property
    def numbered(self) -> bool:
        """True when the publisher writes generations here (some ``base.gN`` exists)."""
        return any(g > 0 for g in self.numbers)

    @property
    def chain(self) -> tuple[int, ...]:
        """The generations a reader can follow: the numbered ones when any exist (the plain
        topic, if it is still there, was closed or is junk), else the plain topic if present."""
        numbered = tuple(g for g in self.numbers if g > 0)
        return numbered or self.numbers

    @property
    def newest(self) -> int | None:
        return self.chain[-1] if self.chain else None

    @property
    def oldest(self) -> int | None:
        return self.chain[0] if self.chain else None

    def topic(self, generation: int) -> str:
        return generation_topic(self.base, generation)

    def topics(self) -> list[str]:
        return [self.topic(g) for g in self.numbers]


def require_no_generations(found: Generations) -> None:
    """A publisher in retention mode refuses a broker that holds generations: consumers there
    follow the generations, and would never see records written to the plain topic."""
    if found.numbered:
        raise ConfigError(
            f"--md-history=retention: this broker holds generations of {found.base} "
            f"({', '.join(found.topics()[-3:])}), written in generations mode; use "
            "--md-history generations (or auto) with it, or delete those topics first"
        )


@dataclass(slots=True)
class GenerationWatch:
    """What an observer sampling a broker learns about one base topic's generations over time.

    ``update`` takes the high watermark of every partition of every generation that exists now.
    Published is cumulative over generations, deleted ones included: each generation is counted
    at the largest watermark seen of it, so a deletion never makes the total go down (a
    generation lives at least two rolls, so sampling once per roll sees all of it).
    """

    first: int | None = None  # newest generation at the first sample
    newest: int | None = None
    _seen: dict[tuple[int, int], int] = field(default_factory=dict)  # (gen, partition) -> hw
    _alive: set[int] = field(default_factory=set)
    _gone: set[int] = field(default_factory=set)

    def update(self, marks: Mapping[tuple[int, int], int]) -> None:
        """``marks``: (generation, partition) -> high watermark, for all that exist now."""
        alive = {gen for gen, _ in marks}
        for key, high in marks.items():
            self._seen[key] = max(self._seen.get(key, 0), high)
        self._gone |= self._alive - alive
        self._alive = alive
        numbered = [g for g in alive if g > 0] or list(alive)
        if numbered:
            self.newest = max(numbered)
            if self.first is None:
                self.first = self.newest

    @property
    def deleted(self) -> int:
        """Generations seen that went away, each counted once (the embedded broker re-creates
        a deleted topic, empty, when a client asks metadata of it; it goes again)."""
        return len(self._gone)

    @property
    def rolls(self) -> int:
        """Generations started since the first sample."""
        if self.first is None or self.newest is None:
            return 0
        return self.newest - self.first

    @property
    def published(self) -> int:
        """Records written to every generation seen (markers included)."""
        return sum(self._seen.values())

    def published_on(self, partitions: Iterable[int]) -> int:
        """``published``, of ``partitions`` only."""
        wanted = set(partitions)
        return sum(high for (_, p), high in self._seen.items() if p in wanted)
