"""``marketfeed quote SYM...``: the cached quotes of a service, with their age.

A symbol outside the service's interest is reported as such (asking is not an error). A symbol
of interest that the cache does not hold yet (cold start) is fetched from the publisher by a
snapshot request and shown with its source; the service's cache is not written (it has one
writer: the service). The reply is used only if it is signed by the feed's key
(``marketfeed.readtrust``); with no key at hand, nothing is fetched.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from common.cache.lookup import QuoteRow, QuoteStatus
from common.cache.lookup import lookup as rows_of
from common.cache.reader import QuoteReader
from common.cache.snapshots import Snapshot, SnapshotClient
from common.cli import EXIT_FAILURE, EXIT_OK
from common.config import add_arguments, build, positive, setting
from common.feedsign import FeedTrust
from common.kafka import KafkaSettings, with_backoff
from common.kafkasec import connection, security_fields
from common.symbols import parse_symbols
from marketfeed.readtrust import reader_trust
from marketfeed.targets import Target, TargetSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteSettings(TargetSettings):
    json: bool = setting(False, help="print JSON instead of a table")
    stale_after: float = setting(
        5.0, help="seconds after which a quote is marked STALE", check=positive
    )
    fetch: bool = setting(True, help="fetch symbols missing from the cache from the publisher")
    fetch_timeout: float = setting(3.0, help="seconds to wait for the publisher", check=positive)


async def lookup(target: Target, symbols: list[str], settings: QuoteSettings) -> list[QuoteRow]:
    """The rows of ``marketfeed quote``: ``common.cache.lookup``, with a one-off snapshot client."""

    trust = reader_trust() if settings.fetch else None

    async def fetch(missing: list[str]) -> Snapshot | None:
        assert trust is not None
        return await _fetch(target, missing, settings.fetch_timeout, trust)

    async with QuoteReader.from_url(
        target.redis_url, prefix=target.redis_prefix, stale_after=settings.stale_after
    ) as reader:
        return await rows_of(reader, symbols, fetch if trust is not None else None)


async def _fetch(
    target: Target, symbols: list[str], timeout: float, trust: FeedTrust
) -> Snapshot | None:
    kafka = KafkaSettings(
        bootstrap=target.bootstrap,
        topic_prefix=target.topic_prefix,
        partitions=target.partitions,
        connect_timeout=timeout,
        **security_fields(target.security),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, client_id="marketfeed-quote", **connection(kafka)
    )
    await with_backoff(
        "quote", producer.start, bootstrap=kafka.bootstrap, timeout=timeout, security=kafka
    )
    try:
        async with SnapshotClient(kafka, producer, service="cli", trust=trust) as client:
            return await client.request(symbols, timeout)
    finally:
        await producer.stop()


def render(rows: list[QuoteRow], service: str) -> str:
    lines = [
        f"{'SYMBOL':<8} {'BID':>10} {'ASK':>10} {'BID SZ':>7} {'ASK SZ':>7} "
        f"{'SEQ':>9} {'AGE':>9}  NOTE"
    ]
    for row in rows:
        q = row.quote
        if row.status is QuoteStatus.NOT_OF_INTEREST:
            lines.append(f"{row.symbol:<8} not in {service}'s interest")
            continue
        if q is None:
            lines.append(f"{row.symbol:<8} no quote yet (not cached, and the publisher has none)")
            continue
        note = ["STALE"] if row.stale else []
        if row.status is QuoteStatus.SNAPSHOT:
            note.append("from publisher snapshot (cold cache)")
        lines.append(
            f"{row.symbol:<8} {q.bid:>10.2f} {q.ask:>10.2f} {q.bid_size:>7} {q.ask_size:>7} "
            f"{q.seq:>9} {_age(row.age_s or 0.0):>9}  {' '.join(note)}".rstrip()
        )
    return "\n".join(lines)


def _age(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbols to look up")
    add_arguments(parser, QuoteSettings)


async def run(args: argparse.Namespace) -> int:
    symbols = parse_symbols(args.symbols, source="SYMBOL")
    del args.symbols
    settings = build(QuoteSettings, args)
    rows = await lookup(settings.resolve(), symbols, settings)
    if settings.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(render(rows, settings.service))
    return EXIT_FAILURE if any(r.status is QuoteStatus.MISSING for r in rows) else EXIT_OK
