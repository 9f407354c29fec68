"""The order driver: sends NewOrder commands on a schedule and times each to its terminal event.

One driver per pair of order topics (order_entry's, the echo baseline's). It produces market
orders keyed by symbol on ``orders.commands``, cycling through the tradable symbols, and reads
every partition of ``orders.events`` from the end it had when it started; each terminal event
(filled, cancelled, rejected) is matched to its order by ``order_id``.

- Open loop (a rate): order *i* is due at ``start + i / rate`` whatever happened before, and
  its latency is counted from that *intended* time, so a driver or a system that falls behind
  shows up as latency instead of quietly sending less (coordinated omission); see
  marketfeed.bench.orders.openloop.
- Closed loop ("max"): at most ``window`` orders outstanding; a new one is sent as soon as one
  is answered, timed from when it was sent.

A run sends during a warm-up and then a measurement window, without a break in its schedule.
Only orders intended inside the window are measured (a Tally: an HdrHistogram and counts), and
throughput is the terminal events that arrived inside the window per second. After the window,
``settle`` waits for the measured orders' answers; an order still unanswered then is counted
as "no answer" and recorded at the latency it had reached by then, a lower bound, so that the
percentiles never look better for what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from common.errors import SchemaError
from common.lifecycle import Lifecycle, cancel_and_wait
from common.metrics import LatencyHistogram
from common.schema import NewOrder
from common.schema.codec import unpack
from common.schema.orders import ORDER_CANCELLED_TYPE, ORDER_FILLED_TYPE, ORDER_REJECTED_TYPE
from common.topics import Topics, symbol_key
from marketfeed.bench.core.clients import open_consumer, open_producer
from marketfeed.bench.orders.openloop import OpenLoop

TERMINAL_KINDS = frozenset({ORDER_FILLED_TYPE, ORDER_CANCELLED_TYPE, ORDER_REJECTED_TYPE})

# Called with the terminal event's type and its arrival time (time.monotonic()).
AnswerHook = Callable[[str, float], None]


@dataclass(eq=False, slots=True)
class Tally:
    """One measurement window: latency of the orders intended in it, and counts."""

    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    sent: int = 0  # measured orders sent
    answered: int = 0  # measured orders answered with a terminal event
    unanswered: int = 0  # measured orders with no answer by the end of settle()
    send_failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reject_reasons: Counter[str] = field(default_factory=Counter)
    arrivals: int = 0  # terminal events of any order of this driver, arrived in the window
    opened: float | None = None  # time.monotonic()
    closed: float | None = None

    @property
    def window_s(self) -> float:
        if self.opened is None or self.closed is None:
            return 0.0
        return self.closed - self.opened

    @property
    def outstanding(self) -> int:
        return self.sent - self.answered - self.unanswered


@dataclass(slots=True)
class _Pending:
    intended: float  # time.monotonic() the order was due (open loop) or sent (closed loop)
    tally: Tally | None  # the window it is measured in, if any
    slot: asyncio.Semaphore | None  # the closed-loop slot it holds
    hook: AnswerHook | None


class OrderDriver(Lifecycle):
    def __init__(
        self,
        *,
        bootstrap: str,
        topics: Topics,
        partitions: int,
        symbols: Sequence[str],
        fetch_max_wait_ms: int = 5,
        connect_timeout: float = 10.0,
    ) -> None:
        if not symbols:
            raise ValueError("the order driver needs symbols to trade")
        self.bootstrap = bootstrap
        self.topics = topics
        self.partitions = partitions
        self.symbols = list(symbols)
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._connect_timeout = connect_timeout
        self._tag = uuid.uuid4().hex[:8]
        self._seq = 0
        self._pending: dict[str, _Pending] = {}
        self._window: Tally | None = None
        self._progress = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tps = [TopicPartition(topics.orders_events, p) for p in range(partitions)]

    async def _start(self) -> None:
        self._producer = await open_producer(
            self.resources,
            bootstrap=self.bootstrap,
            client_id="bench-orders",
            connect_timeout=self._connect_timeout,
        )
        self._consumer = consumer = await open_consumer(
            self.resources,
            bootstrap=self.bootstrap,
            client_id="bench-orders",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            connect_timeout=self._connect_timeout,
        )
        consumer.assign(self._tps)
        await consumer.seek_to_end(*self._tps)
        # Resolved now, before any order exists, so that no answer can be missed. (On the
        # embedded broker the end may be a little early; older events match no order.)
        for tp in self._tps:
            await consumer.position(tp)
        self._reader = asyncio.create_task(self._read(), name="order-driver-reader")
        self.resources.push_async_callback(cancel_and_wait, self._reader)

    async def stop(self) -> None:
        """Stop reading, then close both clients. Safe to call twice."""
        await super().stop()
        self._reader = self._consumer = self._producer = None

    def check(self) -> None:
        """Raise what stopped the reader, if it stopped."""
        if self._reader is not None and self._reader.done():
            self._reader.result()
            raise RuntimeError("the order driver's reader stopped")

    def pause(self) -> None:
        """Stop fetching events while another driver is measured (no load on the broker)."""
        if self._consumer is not None:
            self._consumer.pause(*self._tps)

    def resume(self) -> None:
        if self._consumer is not None:
            self._consumer.resume(*self._tps)

    async def send(
        self,
        symbol: str,
        intended: float,
        *,
        tally: Tally | None = None,
        slot: asyncio.Semaphore | None = None,
        hook: AnswerHook | None = None,
    ) -> str:
        """Send one market order for ``symbol``; its answer is timed from ``intended``."""
        assert self._producer is not None, "order driver not started"
        self._seq += 1
        order = NewOrder(
            order_id=f"{self._tag}-{self._seq}",
            account="bench",
            symbol=symbol,
            side="B" if self._seq % 2 else "S",
            qty=1,
            limit=None,
            ts_ns=time.time_ns(),
        )
        self._pending[order.order_id] = _Pending(intended, tally, slot, hook)
        if tally is not None:
            tally.sent += 1
        try:
            delivery = await self._producer.send(
                self.topics.orders_commands, order.encode(), key=symbol_key(symbol)
            )
        except KafkaError:
            if tally is not None:
                tally.send_failed += 1
            return order.order_id
        if tally is not None:
            delivery.add_done_callback(lambda f: _count_failure(f, tally))
        return order.order_id

    def _next_symbol(self) -> str:
        return self.symbols[self._seq % len(self.symbols)]

    def _open(self, tally: Tally) -> None:
        tally.opened = time.monotonic()
        self._window = tally

    def _close(self, tally: Tally) -> None:
        tally.closed = time.monotonic()
        self._window = None

    async def run_open(self, rate: float, *, warmup: float, duration: float) -> Tally:
        """Send at ``rate`` for ``warmup`` then ``duration`` seconds; measure the latter."""
        tally = Tally()
        schedule = OpenLoop(rate, warmup=warmup, duration=duration)
        while True:
            now = time.monotonic()
            if tally.opened is None and now >= schedule.window_at:
                self._open(tally)
            for intended in schedule.take_due():
                measured = tally if schedule.measured(intended) else None
                await self.send(self._next_symbol(), intended, tally=measured)
            if now >= schedule.end:
                break
            self.check()
            await asyncio.sleep(schedule.wait_time(window_open=tally.opened is not None))
        self._close(tally)
        return tally

    async def run_closed(self, window: int, *, warmup: float, duration: float) -> Tally:
        """Keep ``window`` orders outstanding for ``warmup`` then ``duration`` seconds."""
        tally = Tally()
        slots = asyncio.Semaphore(window)
        start = time.monotonic()
        window_at, end = start + warmup, start + warmup + duration
        while True:
            now = time.monotonic()
            if tally.opened is None and now >= window_at:
                self._open(tally)
            if now >= end:
                break
            boundary = window_at if tally.opened is None else end
            try:
                await asyncio.wait_for(slots.acquire(), max(0.001, boundary - now))
            except TimeoutError:
                continue
            self.check()
            now = time.monotonic()
            if now >= end:
                slots.release()
                break
            measured = tally if tally.opened is not None else None
            await self.send(self._next_symbol(), now, tally=measured, slot=slots)
        self._close(tally)
        return tally

    async def settle(self, tally: Tally, timeout: float) -> None:
        """Wait up to ``timeout`` for the answers of ``tally``'s orders; count the rest."""
        deadline = time.monotonic() + timeout
        while tally.outstanding > 0 and (left := deadline - time.monotonic()) > 0:
            self.check()
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))
        now = time.monotonic()
        missing = [(oid, p) for oid, p in self._pending.items() if p.tally is tally]
        for order_id, pending in missing:
            del self._pending[order_id]
            if pending.slot is not None:
                pending.slot.release()
        tally.unanswered += len(missing)
        tally.latency.record_seconds([now - p.intended for _, p in missing])

    def forget(self) -> int:
        """Drop every order still waiting (the end of a step); return how many there were."""
        dropped = len(self._pending)
        self._pending.clear()
        return dropped

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            latencies: dict[Tally, list[float]] = {}
            for records in batches.values():
                for record in records:
                    answered = self._match(record.value)
                    if answered is None:
                        continue
                    kind, reason, pending = answered
                    if self._window is not None:
                        self._window.arrivals += 1
                    if pending.tally is not None:
                        pending.tally.answered += 1
                        pending.tally.outcomes[kind] += 1
                        if reason:
                            pending.tally.reject_reasons[reason] += 1
                        latencies.setdefault(pending.tally, []).append(now - pending.intended)
                    if pending.slot is not None:
                        pending.slot.release()
                    if pending.hook is not None:
                        pending.hook(kind, now)
            for tally, values in latencies.items():
                tally.latency.record_seconds(values)
            if batches:
                self._progress.set()

    def _match(self, value: bytes | None) -> tuple[str, str, _Pending] | None:
        """The terminal event's type, its reject reason ("" if none) and the order it answers,
        if it answers one of ours."""
        if not value:
            return None
        try:
            kind, raw = unpack(value)
        except SchemaError:
            return None
        order_id = raw.get("order_id")
        if kind not in TERMINAL_KINDS or not isinstance(order_id, str):
            return None
        pending = self._pending.pop(order_id, None)
        if pending is None:
            return None
        reason = raw.get("reason") if kind == ORDER_REJECTED_TYPE else ""
        return kind, reason if isinstance(reason, str) else "?", pending


def _count_failure(delivery: asyncio.Future[object], tally: Tally) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        tally.send_failed += 1
