"""Logging set-up for every entry point: one format, level from the command line."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr, force=True)
    # aiokafka logs every failed reconnect at ERROR; our retry loops report them once, readably,
    # and the final failure becomes one line. DEBUG shows them all.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
