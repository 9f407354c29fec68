"""``marketfeed bench tls``: what the TLS terminator of ``up --tls`` costs a record's trip.

Two embedded brokers in the same invocation: one plain (baseline), one behind the terminator
as ``up --tls`` runs it (advertising the terminator, so a client reaches it only through TLS,
with the run's client certificate). A round is one record produced with acks=all
and read back by a consumer tailing the partition (the feed's own path: publish, then a cache
fetches it); rounds alternate between the two paths so that the machine's noise falls on both.
The figure is the ratio of the latencies, TLS / direct, at p50 and p99.

The command line imports this module to build its parser: what measuring needs (aiokafka,
the embedded servers) is imported by the functions that measure.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import EXIT_OK
from common.config import add_arguments, build, known_log_level, positive, setting
from common.logs import setup_logging
from marketfeed.bench.core.report import table

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from common.kafkasec import KafkaSecurity

_TOPIC = "bench.tls"
_PAYLOAD = b"x" * 100  # about a quote's size


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsBenchConfig:
    rounds: int = setting(2000, help="round trips measured per path", check=positive)
    warmup: int = setting(200, help="round trips per path before measuring", check=positive)
    log_level: str = setting("WARNING", help="log level", check=known_log_level)


@dataclass(frozen=True, slots=True)
class Measured:
    name: str
    p50_ms: float
    p99_ms: float


class _Client:
    """A producer and a consumer tailing partition 0 of the topic, on one path."""

    def __init__(self, bootstrap: str, security: KafkaSecurity) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.latencies_ns: list[int] = []

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: PLC0415

        from common.kafkasec import connection  # noqa: PLC0415

        kwargs = connection(self.security)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=0, **kwargs
        )
        stack.push_async_callback(self.producer.stop)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            **kwargs,
        )
        stack.push_async_callback(self.consumer.stop)
        await self.consumer.start()
        tp = TopicPartition(_TOPIC, 0)
        self.consumer.assign([tp])
        await self.consumer.seek_to_end(tp)

    async def round_trip(self, *, record: bool) -> None:
        assert self.producer is not None
        assert self.consumer is not None
        key = str(time.monotonic_ns()).encode()
        started = time.perf_counter_ns()
        await self.producer.send_and_wait(_TOPIC, _PAYLOAD, key=key, partition=0)
        while True:
            message = await self.consumer.getone()
            if message.key == key:
                break
        if record:
            self.latencies_ns.append(time.perf_counter_ns() - started)

    def summary(self, name: str) -> Measured:
        ordered = sorted(self.latencies_ns)
        return Measured(name, _at(ordered, 0.50) / 1e6, _at(ordered, 0.99) / 1e6)


def _at(ordered: list[int], q: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


async def measure(config: TlsBenchConfig) -> tuple[Measured, Measured]:
    from common.kafka import KafkaSettings, TopicSpec, ensure_topics  # noqa: PLC0415
    from common.kafkasec import PLAINTEXT, security_fields  # noqa: PLC0415
    from common.runtime import EmbeddedStack  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        async with (
            EmbeddedStack(services=()) as plain,
            EmbeddedStack(services=(), tls_dir=Path(tmp) / "pki") as servers,
            contextlib.AsyncExitStack() as stack,
        ):
            secure = KafkaSettings(bootstrap=servers.bootstrap, **security_fields(servers.security))
            for settings in (KafkaSettings(bootstrap=plain.bootstrap), secure):
                await ensure_topics(settings, [TopicSpec(_TOPIC, 1)])
            direct = _Client(plain.bootstrap, PLAINTEXT)
            tls = _Client(servers.bootstrap, servers.security)
            for client in (direct, tls):
                await client.open(stack)
            for i in range(config.warmup + config.rounds):
                for client in (direct, tls):
                    await client.round_trip(record=i >= config.warmup)
            return direct.summary("direct"), tls.summary("through the TLS terminator")


def render(direct: Measured, tls: Measured, config: TlsBenchConfig) -> str:
    rows: list[list[str]] = [[p.name, f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}"] for p in (direct, tls)]
    ratio_50 = tls.p50_ms / direct.p50_ms if direct.p50_ms else 0.0
    ratio_99 = tls.p99_ms / direct.p99_ms if direct.p99_ms else 0.0
    return "\n".join(
        [
            f"produce (acks=all) -> consumed, {config.rounds} round trips per path, alternating",
            table(["path", "p50 ms", "p99 ms"], rows),
            f"TLS / direct: p50 {ratio_50:.2f}x, p99 {ratio_99:.2f}x",
        ]
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, TlsBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(TlsBenchConfig, args)
    setup_logging(config.log_level)
    direct, tls = await measure(config)
    print(render(direct, tls, config))
    return EXIT_OK
