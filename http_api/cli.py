"""``marketfeed api`` / ``python -m http_api``: the HTTP API and dashboard.

Prints one line once it listens, ``marketfeed api: http://HOST:PORT/ (docs at /docs)``, which
a launcher (``up``) can parse for the port; runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from common.cli import OneLineParser, run_async
from common.config import add_arguments, build
from common.logs import setup_logging
from common.service import serve
from http_api.config import ApiConfig

log = logging.getLogger("http_api")

DESCRIPTION = (
    "Run the HTTP API and live dashboard over the services' caches (with no flags: over the "
    "running `marketfeed up`). Every option can also be set by the MARKETFEED_* environment "
    "variable named in its help."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, ApiConfig)


async def run(args: argparse.Namespace) -> int:
    config = build(ApiConfig, args)
    setup_logging(config.log_level)
    resolved = config.resolve()
    # FastAPI, uvicorn and the clients: only once the flags are good (a bad flag exits at once).
    from http_api.server import ApiServer  # noqa: PLC0415

    class _Announced(ApiServer):
        async def _start(self) -> None:
            await super()._start()
            print(f"marketfeed api: {self.url} (docs at /docs)", flush=True)

    server = _Announced(config, resolved)
    served = ", ".join(sorted(resolved.caches)) or "no caches"
    log.info("serving %s; broker %s", served, resolved.kafka.bootstrap)
    return await serve(server, server.wait)


def main(argv: Sequence[str] | None = None, prog: str = "http_api") -> int:
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return run_async(prog, lambda: run(args))
