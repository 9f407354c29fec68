"""``python -m marketfeed.bench.consumers.worker ROLE --flag=VALUE...``: one benchmark process.

ROLE is ``publisher``, ``caching``, ``caching-unsigned``, ``naive`` or ``bare``; the flags are a
WorkerParams (``common.config.to_argv``). The benchmark drives it over stdin/stdout, one line of
JSON each way, one request at a time:

- once started, the worker prints ``{"ready": true, ...}``, or ``{"ready": false, "error": ...}``
  and exits 1 (broker or Redis unreachable);
- each request ``{"id": N, "cmd": C, ...}`` gets ``{"id": N, "ok": true, ...}``, or ``"ok": false``
  with an ``error`` for a request it does not understand;
- ``stop``, stdin closing (the benchmark is gone) or SIGTERM/SIGINT stop it in order; the
  answer to ``stop`` is its last line.

If the role itself fails (its consume loop died) the worker exits with the traceback on stderr
rather than answering: the benchmark sees the exit and says which worker it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from common.cli import EXIT_FAILURE, EXIT_OK, OneLineParser, install_stop_signals
from common.config import add_arguments, build, secret_environ
from common.errors import MarketfeedError
from common.lifecycle import cancel_all
from common.logs import setup_logging
from marketfeed.bench.consumers.roles.bare import BareRole
from marketfeed.bench.consumers.roles.base import Role, WorkerParams
from marketfeed.bench.consumers.roles.caching import CachingRole, UnsignedCachingRole
from marketfeed.bench.consumers.roles.feed import FeedRole
from marketfeed.bench.consumers.roles.naive import NaiveRole

PROG = "marketfeed.bench.consumers.worker"

ROLE_TYPES: dict[str, Callable[[WorkerParams], Role]] = {
    "publisher": FeedRole,
    "caching": CachingRole,
    "caching-unsigned": UnsignedCachingRole,
    "naive": NaiveRole,
    "bare": BareRole,
}


class _Channel:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def say(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 20)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _next_line(reader: asyncio.StreamReader, stop: asyncio.Event) -> bytes | None:
    """The next request, or None once stdin closed or a stop signal came."""
    read = asyncio.ensure_future(reader.readline())
    stopped = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
    await cancel_all(pending)
    if read in done and read.result():
        return read.result()
    return None


async def serve(role: Role, channel: _Channel) -> int:
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        try:
            await role.start()
        except MarketfeedError as exc:
            channel.say({"ready": False, "error": str(exc)})
            return EXIT_FAILURE
        channel.say({"ready": True, **role.info})
        requests = await _stdin()
        while (line := await _next_line(requests, stop)) is not None:
            request = json.loads(line)
            ident, cmd = request.get("id"), str(request.get("cmd"))
            if cmd == "stop":
                await role.stop()
                channel.say({"id": ident, "ok": True})
                break
            try:
                answer = await role.handle(cmd, request)
            except ValueError as exc:
                channel.say({"id": ident, "ok": False, "error": str(exc)})
                continue
            channel.say({"id": ident, "ok": True, **answer})
    finally:
        await role.stop()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="One process of marketfeed bench consumers.")
    parser.add_argument("role", choices=sorted(ROLE_TYPES))
    add_arguments(parser, WorkerParams)
    args = parser.parse_args(argv)
    # Every setting is a flag: the environment has no say (see WorkerParams), but for the
    # secrets (a Redis URL), which never go on a command line.
    params = build(WorkerParams, args, environ=secret_environ(WorkerParams))
    setup_logging(params.log_level)
    # The protocol gets stdout to itself: anything else printed goes to stderr.
    channel = _Channel(os.fdopen(os.dup(1), "w", buffering=1))
    os.dup2(2, 1)
    # A role that fails exits with its traceback: the benchmark points at this worker's log.
    return asyncio.run(serve(ROLE_TYPES[args.role](params), channel))


if __name__ == "__main__":
    sys.exit(main())
