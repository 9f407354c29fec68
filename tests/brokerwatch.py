"""A watch on the embedded broker, so that a test waiting on a broker that stopped answering fails.

Test runs used to hang now and then. Most of it turned out to be ours (a ``stop()`` waiting for
good on a task that had lost its cancellation; see ``common.lifecycle.cancel_and_wait``), but
the embedded broker (Tansu 0.6.0) has also been seen not answering, with a tokio worker at
100 % CPU, and it ignores SIGTERM while clients are connected. A test waiting on it would sit
out its whole timeout. So:

- a thread asks the broker for metadata every ``interval`` seconds over a plain socket (no event
  loop involved, so it works while the loop is stuck); once the broker has not answered for
  ``grace`` seconds it interrupts the running test (``tests/interrupt.py``) at once, and again
  every ``refire`` seconds while that test still runs;
- the failure says "Timeout", so ``--only-rerun=Timeout`` runs the test once more, and the
  integration tests' autouse fixture replaces the hung broker before that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from common.runtime.probes import broker_answers
from tests.interrupt import RunningTest

log = logging.getLogger(__name__)


class BrokerWatch:
    """A daemon thread that fails the running test when the broker stops answering."""

    def __init__(
        self,
        *,
        address: Callable[[], tuple[str, int] | None],
        running: RunningTest,
        interval: float = 2.0,
        grace: float = 12.0,
        refire: float = 10.0,
        probe_timeout: float = 3.0,
    ) -> None:
        self._address = address
        self._running = running
        self._interval = interval
        self._grace = grace
        self._refire = refire
        self._probe_timeout = probe_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="brokerwatch", daemon=True)
        self.hangs_seen = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last_answer = time.monotonic()
        last_fired = 0.0
        last_address: tuple[str, int] | None = None
        while not self._stop.wait(self._interval):
            address = self._address()
            if address is None:
                continue
            if address != last_address:  # a replaced broker starts with a clean slate
                last_address, last_answer = address, time.monotonic()
            if broker_answers(*address, timeout=self._probe_timeout):
                last_answer = time.monotonic()
                continue
            now = time.monotonic()
            silent = now - last_answer
            if silent < self._grace or now - last_fired < self._refire:
                continue
            if self._running.nodeid is None:
                continue
            last_fired = now
            self.hangs_seen += 1
            reason = (
                f"the embedded broker at {address[0]}:{address[1]} has not answered for "
                f"{silent:.0f}s (a hung Tansu; the test is failed now, and rerun on a new broker)"
            )
            log.warning("%s: %s", self._running.nodeid, reason)
            self._running.post(reason)
