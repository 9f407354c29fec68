"""A TLS terminator in front of the embedded broker: clients must show a certificate of the run.

The embedded broker (Tansu 0.6.0, memory engine) offers no working TLS and no usable SASL
(`--authentication` locks every client out; `--cert` alone stays plaintext), so it listens on
127.0.0.1 and *advertises* this terminator's address instead: every client, bootstrapping here,
is told by the broker's metadata to come back here too. The terminator accepts TLS 1.2+ only
from clients whose certificate is signed by the run's CA (``common.runtime.pki``) and pipes the
bytes to the broker. It knows nothing of the Kafka protocol. Measured in the research notes:
produce and group consume work through it, with 1.10x the direct round-trip time.

Runs as its own process (``python -m common.runtime.tlsproxy``), supervised like the broker, so
that relaying never competes with ``marketfeed up``'s own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from common.lifecycle import Lifecycle, cancel_all

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
# A client that does not finish its handshake in this long is dropped (a port scanner, a
# plaintext Kafka client waiting for an answer that will never come).
_HANDSHAKE_TIMEOUT_S = 10.0


def server_context(*, ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2+, a client certificate signed by ``ca`` required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class TlsTerminator(Lifecycle):
    """Accepts TLS on ``listen`` and relays each connection to ``target`` (host, port)."""

    def __init__(
        self,
        *,
        listen: tuple[str, int],
        target: tuple[str, int],
        context: ssl.SSLContext,
    ) -> None:
        self.listen = listen
        self.target = target
        self._context = context
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "terminator not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle,
            self.listen[0],
            self.listen[1],
            ssl=self._context,
            ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S,
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await cancel_all(self._connections)
        if server is not None:
            await server.wait_closed()

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.warning("broker at %s:%d unreachable: %s", *self.target, exc)
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer)
            )
        finally:
            for writer in (client_writer, broker_writer):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side (Kafka clients never do)."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, ssl.SSLError, OSError):
        # A peer that went away ends its connection, nothing else.
        writer.close()


def _handshake_failures(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """Log refused clients in one line each instead of asyncio's traceback."""
    exc = context.get("exception")
    if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
        log.info("refused a client: %s", exc)
        return
    loop.default_exception_handler(context)


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_handshake_failures)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    context = server_context(ca=args.ca, cert=args.cert, key=args.key)
    async with TlsTerminator(
        listen=(args.host, args.listen), target=(args.host, args.target), context=context
    ) as terminator:
        log.info(
            "TLS terminator on %s:%d -> broker %s:%d",
            args.host,
            terminator.port,
            *terminator.target,
        )
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.runtime.tlsproxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--listen", type=int, required=True, help="port to accept TLS on")
    parser.add_argument("--target", type=int, required=True, help="the broker's plaintext port")
    parser.add_argument("--ca", type=Path, required=True, help="CA that signs client certificates")
    parser.add_argument("--cert", type=Path, required=True, help="the terminator's certificate")
    parser.add_argument("--key", type=Path, required=True, help="its private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
