"""Is a server child alive and answering? Probes for a supervisor, and how a child ended.

A process that was frozen (SIGSTOP) or hung still *accepts* TCP connections (the kernel
queues them), so a connect is no proof of life: the broker is asked for metadata and Redis is
sent a PING, each with a deadline. The broker probe speaks the Kafka protocol over a plain
blocking socket (no client library, no event loop), so a test-suite watch thread can use it as
well as ``marketfeed up`` (through ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
from pathlib import Path

_CORRELATION_ID = 0x4D46  # any value: it is checked in the answer


def _metadata_request() -> bytes:
    # Metadata v1 with an empty topic list: the broker reads its cluster metadata from storage
    # (so a storage deadlock shows) but lists no topics (cheap with thousands of test topics).
    client_id = b"probe"
    body = struct.pack(">hhih", 3, 1, _CORRELATION_ID, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


def broker_answers(host: str, port: int, *, timeout: float = 3.0) -> bool:
    """True if the broker answers a metadata request within ``timeout`` seconds (blocking)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_metadata_request())
            (size,) = struct.unpack(">i", _read_exactly(sock, 4))
            (correlation_id,) = struct.unpack(">i", _read_exactly(sock, min(size, 4)))
    except (OSError, struct.error):
        return False
    return bool(correlation_id == _CORRELATION_ID)


async def redis_answers(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """True if the Redis server at host:port answers PING within ``timeout`` seconds.

    A server that wants a password answers too (``-NOAUTH``): alive is all this asks, so a
    supervisor needs no password to watch one. Spoken raw (RESP inline command) rather than
    through redis-py, which retries a refused handshake until the deadline.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"PING\r\n")
            await writer.drain()
            line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return line.startswith((b"+PONG", b"-NOAUTH"))


def is_stopped(pid: int | None) -> bool:
    """True if process ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP), per /proc."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")".
    return stat.rpartition(")")[2].split()[:1] == ["T"]


def describe_exit(returncode: int) -> str:
    """How a child ended, as a log line says it: "exited with code 1", "exited (signal 9)"."""
    if returncode < 0:
        number = -returncode
        with contextlib.suppress(ValueError):
            return f"exited (signal {number}, {signal.Signals(number).name})"
        return f"exited (signal {number})"
    return f"exited with code {returncode}"
