"""``marketfeed bench publisher``: how fast the publisher gets records acknowledged.

For each symbol count, two runs against the same broker in the same invocation:

- baseline: a bare aiokafka ``await producer.send()`` loop over pre-built payloads (the same
  msgpack quotes the publisher would send), so it measures only the client and the broker;
- publisher: the real publisher, unthrottled, generating, encoding, signing and sending as it
  runs; and the same unsigned (``--insecure-unsigned-feed``), to show what signing costs.

The figures are the ratios publisher / baseline and signed / unsigned of acknowledged messages
per second. Then what verification costs a cache: its batch path (``common.cache.batch.prepare``:
filter, decode, conflate, verify the winners) over the same fetched batches of signed quotes,
with the key and without, in records per second (CPU only: no broker, no Redis).

The command line imports this module to build its parser: what measuring needs (aiokafka, the
publisher, numpy) is imported by the functions that measure, when the benchmark runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.cli import EXIT_OK
from common.config import add_arguments, all_positive, build, known_log_level, positive, setting
from common.logs import setup_logging
from marketfeed.bench.core.report import table

if TYPE_CHECKING:
    from common.kafka import KafkaSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherBenchConfig:
    symbols: tuple[int, ...] = setting(
        (500, 50_000), help="symbol counts to measure, comma-separated", check=all_positive
    )
    duration: float = setting(5.0, help="seconds each measured run lasts", check=positive)
    partitions: int = setting(16, help="partitions of the topics", check=positive)
    bootstrap: str | None = setting(None, help="use this broker instead of an embedded one")
    interest: int = setting(
        50, help="symbols the measured cache follows (of --symbols)", check=positive
    )
    fetch_records: int = setting(
        100, help="records per partition in each batch the measured cache prepares", check=positive
    )
    rounds: int = setting(
        2,
        help="signed and unsigned runs alternate this many times; the best of each is kept "
        "(a shared machine's load comes and goes)",
        check=positive,
    )
    log_level: str = setting("WARNING", help="log level", check=known_log_level)


@dataclass(frozen=True, slots=True)
class Result:
    symbols: int
    baseline_rate: float
    publisher_rate: float
    publisher_failed: int
    unsigned_rate: float = 0.0
    cache_signed_rate: float = 0.0  # records/s through the cache's batch path, verifying
    cache_unsigned_rate: float = 0.0

    @property
    def ratio(self) -> float:
        return self.publisher_rate / self.baseline_rate if self.baseline_rate else 0.0

    @property
    def signing_ratio(self) -> float:
        return self.publisher_rate / self.unsigned_rate if self.unsigned_rate else 0.0

    @property
    def verify_ratio(self) -> float:
        return (
            self.cache_signed_rate / self.cache_unsigned_rate if self.cache_unsigned_rate else 0.0
        )


def _prebuilt_payloads(
    settings: KafkaSettings, symbols: int, count: int
) -> list[tuple[bytes, bytes]]:
    """``count`` encoded quotes exactly as the publisher would build them."""
    from feed_publisher.config import PublisherConfig  # noqa: PLC0415 - see the docstring
    from feed_publisher.publisher import Publisher  # noqa: PLC0415
    from marketfeed.bench.core.clients import feed_fields  # noqa: PLC0415

    pub = Publisher(
        PublisherConfig(bootstrap=settings.bootstrap, symbols=symbols, seed=1, **feed_fields())
    )
    ticks = pub.market.step(count)
    records = pub.encoder.quotes(ticks.quotes, time.time_ns())
    return [kv for part in records.by_partition.values() for kv in part]


async def _baseline(
    settings: KafkaSettings, payloads: list[tuple[bytes, bytes]], duration: float
) -> float:
    from marketfeed.bench.core.clients import open_producer  # noqa: PLC0415 - see the docstring

    async with contextlib.AsyncExitStack() as stack:
        producer = await open_producer(
            stack,
            bootstrap=settings.bootstrap,
            client_id="bench-publisher-baseline",
            connect_timeout=settings.connect_timeout,
            linger_ms=2,
        )
        topic = settings.topics.quotes
        futures = []
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < duration:
            key, value = payloads[i % len(payloads)]
            futures.append(await producer.send(topic, value, key=key))
            i += 1
        results = await asyncio.gather(*futures, return_exceptions=True)
        elapsed = time.monotonic() - started
    acked = sum(1 for r in results if not isinstance(r, BaseException))
    return acked / elapsed


async def _publisher(
    settings: KafkaSettings, symbols: int, duration: float, *, signed: bool = True
) -> tuple[float, int]:
    from feed_publisher.publisher import Publisher  # noqa: PLC0415 - see the docstring
    from marketfeed.bench.core.servers import feed_config  # noqa: PLC0415

    config = feed_config(
        settings, symbols=symbols, rate=None, seed=1, duration=duration, signed=signed
    )
    async with Publisher(config) as publisher:
        started = time.monotonic()
        await publisher.run(asyncio.Event())
        await publisher.sink.flush()
        elapsed = time.monotonic() - started
    stats = publisher.stats()
    return stats.acked / elapsed, stats.failed


async def measure(config: PublisherBenchConfig) -> list[Result]:
    from common.kafka import KafkaSettings, ensure_topics, market_data_topics  # noqa: PLC0415
    from marketfeed.bench.core.servers import bench_servers, run_prefix  # noqa: PLC0415

    results = []
    async with bench_servers(bootstrap=config.bootstrap, prefix="") as servers:
        for symbols in config.symbols:
            base, pub, unsigned = (
                KafkaSettings(
                    bootstrap=servers.bootstrap,
                    partitions=config.partitions,
                    topic_prefix=run_prefix(name),
                )
                for name in ("base", "pub", "unsigned")
            )
            await ensure_topics(base, market_data_topics(base))
            payloads = _prebuilt_payloads(base, symbols, 200_000)
            baseline_rate = await _baseline(base, payloads, config.duration)
            publisher_rate = unsigned_rate = 0.0
            failed = 0
            for _ in range(config.rounds):
                rate, lost = await _publisher(pub, symbols, config.duration)
                publisher_rate, failed = max(publisher_rate, rate), failed + lost
                rate, _ = await _publisher(unsigned, symbols, config.duration, signed=False)
                unsigned_rate = max(unsigned_rate, rate)
            verifying, trusting = cache_path(base, payloads, config, symbols)
            results.append(
                Result(
                    symbols,
                    baseline_rate,
                    publisher_rate,
                    failed,
                    unsigned_rate,
                    verifying,
                    trusting,
                )
            )
    return results


def render(results: list[Result], config: PublisherBenchConfig) -> str:
    rows = [
        [
            f"{r.symbols:,}",
            f"{r.baseline_rate:,.0f}",
            f"{r.publisher_rate:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.unsigned_rate:,.0f}",
            f"{r.signing_ratio:.2f}",
            str(r.publisher_failed),
        ]
        for r in results
    ]
    head = (
        f"publisher throughput, acknowledged msg/s over {config.duration:.0f}s each, "
        f"{config.partitions} partitions"
    )
    columns = ["symbols", "bare send() loop", "publisher", "ratio", "unsigned", "signed/unsigned"]
    cache_rows = [
        [
            f"{r.symbols:,}",
            f"{r.cache_signed_rate:,.0f}",
            f"{r.cache_unsigned_rate:,.0f}",
            f"{r.verify_ratio:.2f}",
        ]
        for r in results
    ]
    cache_head = (
        f"cache batch path (filter, decode, conflate, verify winners), records/s; interest "
        f"{config.interest} symbols, batches of {config.fetch_records} records x "
        f"{config.partitions} partitions"
    )
    return "\n".join(
        [
            head,
            table([*columns, "failed"], rows),
            "",
            cache_head,
            table(["symbols", "verifying", "no key", "verifying/no key"], cache_rows),
        ]
    )


def cache_path(
    settings: KafkaSettings,
    payloads: list[tuple[bytes, bytes]],
    config: PublisherBenchConfig,
    symbols: int,
) -> tuple[float, float]:
    """Records/s through the cache's batch path over ``payloads`` signed as the publisher
    signs them: verifying with the run's key, and with no key (the same batches)."""
    from common.cache.batch import KeyFilter, prepare  # noqa: PLC0415 - see the docstring
    from common.feedsign import FeedTrust  # noqa: PLC0415
    from common.generations.rollover import cut  # noqa: PLC0415
    from common.partitioner import partition_for  # noqa: PLC0415
    from feed_publisher.universe import universe  # noqa: PLC0415
    from marketfeed.bench.core.clients import feed_trust, run_signer  # noqa: PLC0415

    base, signer = settings.topics.quotes, run_signer()
    by_partition: dict[int, list[_Record]] = {}
    for key, value in payloads:
        records = by_partition.setdefault(partition_for(key.decode(), config.partitions), [])
        headers = signer.headers(base, key, value)
        records.append(_Record(len(records), 0, key, value, headers))
    n = config.fetch_records
    longest = max(len(r) for r in by_partition.values())
    fetches = [
        {p: cut(base, p, 0, rs[i : i + n]) for p, rs in by_partition.items() if rs[i : i + n]}
        for i in range(0, longest, n)
    ]
    interest = universe(symbols)[: config.interest]
    verifying = feed_trust()
    modes = {"verifying": verifying, "no key": FeedTrust(None, verifying.plausibility)}
    rates = dict.fromkeys(modes, 0.0)
    # A first pass of each warms up (the key filter learns the keys); then alternate, best of.
    for name in [*modes, *(list(modes) * config.rounds)]:
        keys = KeyFilter(interest)
        versions: dict[str, tuple[int, int]] = {}
        started = time.perf_counter()
        for chunks in fetches:
            prepare(chunks, keys, versions, modes[name], context=base, now_ns=time.time_ns())
        rates[name] = max(rates[name], len(payloads) / (time.perf_counter() - started))
    return rates["verifying"], rates["no key"]


@dataclass(frozen=True, slots=True)
class _Record:
    offset: int
    timestamp: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, PublisherBenchConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(PublisherBenchConfig, args)
    setup_logging(config.log_level)
    print(render(await measure(config), config))
    return EXIT_OK
