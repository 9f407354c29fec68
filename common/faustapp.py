"""How marketfeed runs faust: one App configuration, and an agent loop that acks after the work.

Both stream processors (order_entry's order processor, portfolio's position keeper) run a faust
App inside their own asyncio lifecycle and share these choices:

- Fetch wait from the service's settings (``--fetch-max-wait-ms``, as for its quote cache): faust
  hard-codes 1,500 ms in its aiokafka consumer, and the embedded broker holds a fetch for that
  long when there is little data, which put a floor of 0.5-1 s under order latency at low rates.
  A transport of our own (scheme ``marketfeed+kafka://``) sets it; nothing else differs.
- Group timeouts from the service's settings (``common.groups``): on the embedded broker a join
  waits about half the session timeout, and a killed member's partitions move on after it.
- ``at_least_once``, never ``exactly_once`` (the embedded broker's transactions are unreliable);
  each processor is idempotent by order id instead.
- Acks after the work, not before: faust acks an event when the agent's ``async for`` moves on
  *or is left*, so an agent cancelled mid-event (a stop while Redis is away) would mark that
  event done and its offset could be committed unprocessed. ``processed()`` turns faust's acks
  off for the stream and acks each event only once its handler returned (portfolio; order_entry
  acks from its window of answered commands, ``order_entry.inflight``). ``stream_wait_empty``
  is off for the same reason: a stop commits what was processed and leaves the event in hand to
  be delivered again, rather than waiting for a handler that cannot finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import faust
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from common.errors import ProcessingFailed
from common.groups import GroupSettings
from common.kafka import close_consumer
from common.kafkasec import faust_credentials
from common.retry import Backoff

log = logging.getLogger(__name__)

SCHEME = "marketfeed+kafka"
# How long the consumer of an app stopped before it joined its group may take to close.
_JOINING_CLOSE_S = 0.5
# How long an app's final commit may take (a broker that is gone never answers it).
_FINAL_COMMIT_S = 3.0


class App(faust.App):
    """A faust App that knows the fetch wait its consumer should use."""

    fetch_max_wait_ms: int = 500


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher; there is no public knob.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 500)
        return consumer

    async def on_thread_stop(self) -> None:
        # faust's own version awaits the consumer's stop() unbounded: with the broker gone
        # (or a fetch in its retry backoff) that stop raises CancelledError out of aiokafka's
        # fetcher or waits for good on the group coordinator, the consumer thread dies with a
        # traceback and the app's stop waits on it for ever. Skip it (call the base class of
        # faust's) and close the consumer as every other consumer is closed.
        await super(faust_aiokafka.AIOKafkaConsumerThread, self).on_thread_stop()
        consumer = self._consumer
        if consumer is None:
            return
        if consumer.assignment():
            await close_consumer(consumer)
        else:
            # Still joining: its JoinGroup waits on the broker (on Tansu about half the
            # session timeout) and it has nothing to commit; the group forgets it on its own.
            await close_consumer(
                consumer, timeout=_JOINING_CLOSE_S, expected="stopped while joining its group"
            )


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_stop(self) -> None:
        # faust commits what was processed here, unbounded: with the broker gone aiokafka
        # looks for the group coordinator for ever. Bounded, what it did not commit is
        # delivered again to the next owner, which the processors are idempotent for.
        try:
            async with asyncio.timeout(_FINAL_COMMIT_S):
                await super().on_stop()
        except TimeoutError:
            log.warning(
                "the final commit did not finish in %.0fs; uncommitted events come again",
                _FINAL_COMMIT_S,
            )


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[Any]] = _Consumer


TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")


def faust_broker(bootstrap: str) -> str:
    return ";".join(f"{SCHEME}://{host.strip()}" for host in bootstrap.split(","))


def make_app(app_id: str, *, settings: GroupSettings, datadir: str) -> App:
    session = settings.session_timeout
    app = App(
        app_id,
        broker=faust_broker(settings.bootstrap),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=datadir,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=session,
        broker_heartbeat_interval=session / 6,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_acks=-1,
        topic_partitions=1,
        broker_credentials=faust_credentials(settings),
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


# How a processor waits out a server that is away with a record in hand: at least every half
# second, so that the flow resumes within that once the server is back.
HOLD = Backoff(first=0.05, factor=2.0, most=0.5)

# (key, value, partition, offset) of one record
Handler = Callable[[bytes | None, bytes | None, int, int], Awaitable[None]]


class FailStop:
    """Where a stream processor reports an error it cannot get past; its service waits on it.

    Errors a processor expects (a server away) are retried where they happen. Anything else
    would make faust restart the agent without the event in hand, and faust may then commit
    past that event (it skips a single missing offset). So the processor parks instead, and
    the service stops: the event, never acked, is delivered again to whoever comes next.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._failed: asyncio.Future[None] | None = None

    def _future(self) -> asyncio.Future[None]:
        if self._failed is None:
            self._failed = asyncio.get_running_loop().create_future()
        return self._failed

    def fail(self, exc: BaseException) -> None:
        future = self._future()
        if not future.done():
            log.error("%s cannot go on: %r; stopping", self.what, exc, exc_info=exc)
            future.set_exception(ProcessingFailed(f"{self.what} stopped: {exc!r}"))

    async def wait(self) -> None:
        """Until a failure is reported; raises ProcessingFailed."""
        await self._future()

    async def guard(self, work: Awaitable[None]) -> None:
        """Await ``work``; on an unplanned error report it and park (the service stops us)."""
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - unplanned by definition; see the class doc
            self.fail(exc)
            await asyncio.Future()  # parked until the service cancels the agent


async def processed(stream: Any, handle: Handler, fail_stop: FailStop) -> AsyncIterator[None]:
    """The body of an agent: ``handle`` each event, ack it only after ``handle`` returned."""
    stream.enable_acks = False
    async for event in stream.events():
        message = event.message
        await fail_stop.guard(handle(event.key, event.value, message.partition, message.offset))
        event.ack()
        yield None
