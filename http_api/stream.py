"""The quote stream's edge: one poller per service, one latest-value slot per client.

How the stream learns of new quotes: it polls the service's cache (one MGET of the symbols
its clients asked for, at the highest rate any of them asked for), rather than following the
feed. A poll costs the same whatever the feed's rate (tens of microseconds of Redis work for
a few dozen symbols), where following the feed means fetching and decoding every record of the
partitions that hold the symbols, thousands a second; it also shows exactly what the cache
holds (conflated, de-duplicated, refilled from snapshots), so a stream never disagrees with
``GET /v1/quotes``. Measured: see ``marketfeed bench access`` (the fan-out figures).

Fan-out: a changed value is offered to every client of its symbol, into the client's slot,
which keeps only the newest value per symbol (a quote replaced before it was sent counts as
conflated). A client's sender takes the whole slot at most ``max_rate`` times a second; one
that cannot keep up (a slow network, a reader that stopped reading) only gets conflated more:
the poller never waits for a client, and no queue grows anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from common.cache.lookup import QuoteRow, QuoteStatus
from common.cache.reader import QuoteReader
from common.errors import CacheUnavailableError, SchemaError
from common.lifecycle import Lifecycle, cancel_all
from common.redisconn import UNAVAILABLE
from common.retry import Retry
from common.schema import Quote, decode_quote
from http_api.errors import ApiError, Reason

log = logging.getLogger("http_api.stream")


class StreamClient:
    """One client's slot: the newest quote per symbol that it has not been sent yet."""

    def __init__(self, service: str, symbols: frozenset[str], max_rate: float) -> None:
        self.service = service
        self.symbols = symbols
        self.max_rate = max_rate
        self.changed = asyncio.Event()
        self.closed = False
        self.error: str | None = None  # why its cache cannot be read now, if it cannot
        self.updates = 0  # values offered
        self.replaced = 0  # values replaced in the slot before they were sent
        self.conflated = 0  # quotes of the feed this client never saw (sequence gaps)
        self.sent = 0  # events sent
        self._pending: dict[str, Quote] = {}
        self._last_sent: dict[str, tuple[int, int]] = {}  # symbol -> (epoch, seq)

    def offer(self, quote: Quote) -> None:
        if quote.symbol in self._pending:
            self.replaced += 1
        self._pending[quote.symbol] = quote
        self.updates += 1
        self.changed.set()

    def take(self, stale_after: float) -> list[QuoteRow]:
        """Everything pending, aged as of now; the slot is empty after."""
        pending, self._pending = self._pending, {}
        self.changed.clear()
        now = time.time_ns()
        rows = []
        for symbol, quote in pending.items():
            # Whatever came between two values sent was conflated away: by the cache (newest
            # per batch), by the poll (newest per poll), or in this slot.
            epoch, seq = self._last_sent.get(symbol, (quote.epoch, quote.seq - 1))
            if epoch == quote.epoch and quote.seq > seq + 1:
                self.conflated += quote.seq - seq - 1
            self._last_sent[symbol] = (quote.epoch, quote.seq)
            age = max(0.0, (now - quote.ts_ns) / 1e9)
            rows.append(QuoteRow(symbol, QuoteStatus.CACHED, quote, age, age > stale_after))
        return rows

    def close(self) -> None:
        self.closed = True
        self.changed.set()


class ServicePoller:
    """Polls one service's cache for the symbols its clients follow; offers what changed."""

    def __init__(self, service: str, reader: QuoteReader, *, max_rate: float) -> None:
        self.service = service
        self.reader = reader
        self.max_rate = max_rate
        self.polls = 0
        self._clients: set[StreamClient] = set()
        self._by_symbol: dict[str, set[StreamClient]] = {}
        self._last: dict[str, bytes] = {}
        self._quotes: dict[str, Quote] = {}
        self._wake = asyncio.Event()
        # One log line when the cache goes away, one when it is back: not one per poll.
        self._retry = Retry(f"api stream: {service}'s cache", errors=UNAVAILABLE, logger=log)
        self._task: asyncio.Task[None] | None = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    def add(self, client: StreamClient) -> None:
        self._clients.add(client)
        for symbol in client.symbols:
            self._by_symbol.setdefault(symbol, set()).add(client)
            known = self._quotes.get(symbol)
            if known is not None:
                client.offer(known)  # what others' polls already found: sent at once
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"api-stream-{self.service}")
        self._wake.set()

    def remove(self, client: StreamClient) -> None:
        self._clients.discard(client)
        for symbol in client.symbols:
            followers = self._by_symbol.get(symbol)
            if followers is not None:
                followers.discard(client)
                if not followers:
                    del self._by_symbol[symbol]
                    self._last.pop(symbol, None)
                    self._quotes.pop(symbol, None)

    async def close(self) -> None:
        for client in list(self._clients):
            client.close()
        task, self._task = self._task, None
        await cancel_all([task] if task else [])

    async def _run(self) -> None:
        while True:
            if not self._clients:
                self._wake.clear()
                await self._wake.wait()
                continue
            rate = min(self.max_rate, max(c.max_rate for c in self._clients))
            began = time.monotonic()
            await self._poll()
            await asyncio.sleep(max(0.0, 1.0 / rate - (time.monotonic() - began)))

    async def _poll(self) -> None:
        symbols = list(self._by_symbol)
        keys = [self.reader.keys.quote(s) for s in symbols]
        try:
            values = await self._retry.run(lambda: self.reader.client.mget(keys), timeout=0)
        except UNAVAILABLE as exc:
            self._tell(f"cannot read {self.service}'s cache: {exc}")
            return
        self.polls += 1
        self._tell(None)
        for symbol, value in zip(symbols, values, strict=True):
            raw = value.encode() if isinstance(value, str) else value
            if raw is None or raw == self._last.get(symbol):
                continue
            try:
                quote = decode_quote(raw)
            except SchemaError:
                continue  # the cache's writer validated it; a bad value is not ours to send
            self._last[symbol], self._quotes[symbol] = raw, quote
            for client in self._by_symbol.get(symbol, ()):
                client.offer(quote)

    def _tell(self, error: str | None) -> None:
        for client in self._clients:
            if client.error != error:
                client.error = error
                client.changed.set()


@dataclass(frozen=True, slots=True)
class HubStats:
    clients: int
    polls: int
    updates: int
    conflated: int
    sent: int


class QuoteHub(Lifecycle):
    """The pollers of every service a client streams from, and the clients' slots."""

    def __init__(
        self, readers: dict[str, QuoteReader], *, max_rate: float, max_clients: int
    ) -> None:
        self.readers = readers
        self.max_rate = max_rate
        self.max_clients = max_clients
        self._pollers: dict[str, ServicePoller] = {}
        self._clients: set[StreamClient] = set()
        self._gone = HubStats(0, 0, 0, 0, 0)  # counts of the clients that left
        self.closing = False

    async def _start(self) -> None:
        self.closing = False

    async def stop(self) -> None:
        self.closing = True
        pollers, self._pollers = list(self._pollers.values()), {}
        for poller in pollers:
            await poller.close()
        await super().stop()

    @asynccontextmanager
    async def subscribe(
        self, service: str, symbols: Iterable[str], max_rate: float
    ) -> AsyncIterator[StreamClient]:
        if self.closing:
            raise CacheUnavailableError("the API is stopping")
        if len(self._clients) >= self.max_clients:
            raise ApiError(
                503, Reason.TOO_MANY_CLIENTS, f"{self.max_clients} stream clients already"
            )
        poller = self._pollers.get(service)
        if poller is None:
            poller = ServicePoller(service, self.readers[service], max_rate=self.max_rate)
            self._pollers[service] = poller
        client = StreamClient(service, frozenset(symbols), min(max_rate, self.max_rate))
        self._clients.add(client)
        poller.add(client)
        try:
            yield client
        finally:
            poller.remove(client)
            self._clients.discard(client)
            g = self._gone
            self._gone = HubStats(
                0,
                0,
                updates=g.updates + client.updates,
                conflated=g.conflated + client.conflated,
                sent=g.sent + client.sent,
            )

    def stats(self) -> HubStats:
        live = list(self._clients)
        g = self._gone
        return HubStats(
            clients=len(live),
            polls=sum(p.polls for p in self._pollers.values()),
            updates=g.updates + sum(c.updates for c in live),
            conflated=g.conflated + sum(c.conflated for c in live),
            sent=g.sent + sum(c.sent for c in live),
        )
