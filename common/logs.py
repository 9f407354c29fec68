"""What goes to the log: one format for every entry point, and never a secret in a line.

A URL given by the user (a Redis URL, a ledger URL) can carry a password; anything that names
a server in a log line or an error message shows it through :func:`redact_url`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr, force=True)
    # aiokafka logs every failed reconnect at ERROR; our retry loops report them once, readably,
    # and the final failure becomes one line. DEBUG shows them all.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def also_to_file(path: Path, level: str = "INFO") -> logging.Handler:
    """Also log to ``path`` from ``level`` up; what goes to stderr keeps its own level."""
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)
    file = logging.FileHandler(path)
    file.setFormatter(logging.Formatter(FORMAT))
    file.setLevel(level.upper())
    root.addHandler(file)
    root.setLevel(min(root.level, file.level))
    return file


def redact_url(url: str) -> str:
    """``url`` without the parts that can carry a secret: user, password and query.

    ``redis://:pw@host:6379/0?password=pw`` -> ``redis://host:6379/0``. The query goes whole:
    redis-py reads ``password=`` (and TLS key paths) from it, and none of it helps a reader of
    the log find the server. Text that is not a URL (``host:port``) loses only a ``user@``.
    """
    if "://" not in url:
        return url.rpartition("@")[2]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
