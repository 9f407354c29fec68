"""``marketfeed quote SYM...``: the cached quotes of a service, with their age.

A symbol outside the service's interest is reported as such (asking is not an error). A symbol
of interest that the cache does not hold yet (cold start) is fetched from the publisher by a
snapshot request and shown with its source; the service's cache is not written (it has one
writer: the service).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from common.cache.reader import CachedQuote, QuoteReader
from common.cache.snapshots import SnapshotClient
from common.cli import EXIT_FAILURE, EXIT_OK
from common.config import add_arguments, build, positive, setting
from common.kafka import KafkaSettings, with_backoff
from common.schema import Quote
from common.symbols import parse_symbols
from marketfeed.targets import Target, TargetSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteSettings(TargetSettings):
    json: bool = setting(False, help="print JSON instead of a table")
    stale_after: float = setting(
        5.0, help="seconds after which a quote is marked STALE", check=positive
    )
    fetch: bool = setting(True, help="fetch symbols missing from the cache from the publisher")
    fetch_timeout: float = setting(3.0, help="seconds to wait for the publisher", check=positive)


@dataclass(frozen=True, slots=True)
class Row:
    symbol: str
    status: str  # cached | snapshot | missing | not-of-interest
    quote: Quote | None = None
    age_s: float | None = None
    stale: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbol, "status": self.status}
        if self.quote is not None:
            q = self.quote
            out |= {
                "bid": q.bid,
                "ask": q.ask,
                "bid_size": q.bid_size,
                "ask_size": q.ask_size,
                "epoch": q.epoch,
                "seq": q.seq,
                "ts_ns": q.ts_ns,
                "age_s": round(self.age_s or 0.0, 6),
                "stale": self.stale,
            }
        return out


async def lookup(target: Target, symbols: list[str], settings: QuoteSettings) -> list[Row]:
    async with QuoteReader.from_url(
        target.redis_url, prefix=target.redis_prefix, stale_after=settings.stale_after
    ) as reader:
        interest = await reader.interest()
        cached = await reader.get_many(symbols)
    rows: dict[str, Row] = {}
    missing = []
    for symbol in symbols:
        hit = cached.get(symbol)
        if symbol not in interest:
            rows[symbol] = _row(symbol, "not-of-interest", hit)
        elif hit is None:
            missing.append(symbol)
        else:
            rows[symbol] = _row(symbol, "cached", hit)
    if missing and settings.fetch:
        rows |= await _fetch(target, missing, settings)
    for symbol in missing:
        rows.setdefault(symbol, Row(symbol, "missing"))
    return [rows[s] for s in symbols]


def _row(symbol: str, status: str, hit: CachedQuote | None) -> Row:
    if hit is None:
        return Row(symbol, status)
    return Row(symbol, status, hit.quote, hit.age_s, hit.stale)


async def _fetch(target: Target, symbols: list[str], settings: QuoteSettings) -> dict[str, Row]:
    kafka = KafkaSettings(
        bootstrap=target.bootstrap,
        topic_prefix=target.topic_prefix,
        partitions=target.partitions,
        connect_timeout=settings.fetch_timeout,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, client_id="marketfeed-quote")
    await with_backoff(
        "quote", producer.start, bootstrap=kafka.bootstrap, timeout=settings.fetch_timeout
    )
    try:
        client = SnapshotClient(kafka, producer, service="cli")
        await client.start()
        try:
            snapshot = await client.request(symbols, settings.fetch_timeout)
        finally:
            await client.stop()
    finally:
        await producer.stop()
    if snapshot is None:
        return {}
    now = time.time_ns()
    out = {}
    for quote, _ in snapshot.quotes:
        age = max(0.0, (now - quote.ts_ns) / 1e9)
        out[quote.symbol] = Row(quote.symbol, "snapshot", quote, age, age > settings.stale_after)
    return out


def render(rows: list[Row], service: str) -> str:
    lines = [
        f"{'SYMBOL':<8} {'BID':>10} {'ASK':>10} {'BID SZ':>7} {'ASK SZ':>7} "
        f"{'SEQ':>9} {'AGE':>9}  NOTE"
    ]
    for row in rows:
        q = row.quote
        if row.status == "not-of-interest":
            lines.append(f"{row.symbol:<8} not in {service}'s interest")
            continue
        if q is None:
            lines.append(f"{row.symbol:<8} no quote yet (not cached, and the publisher has none)")
            continue
        note = ["STALE"] if row.stale else []
        if row.status == "snapshot":
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
    return EXIT_FAILURE if any(r.status == "missing" for r in rows) else EXIT_OK
