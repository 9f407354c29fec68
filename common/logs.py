"""What goes to the log: one format for every entry point, and never a secret in a line.

A URL given by the user (a Redis URL, a ledger URL) can carry a password; anything that names
a server in a log line or an error message shows it through :func:`redact_url`.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

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
    """``url`` with its secrets masked: the password and any secret in the query.

    ``redis://:pw@host:6379/0?password=pw`` -> ``redis://:***@host:6379/0?password=***``: a
    reader of the log still sees which server, which user and that a password was given (an
    error "wrong password" makes sense only then). Text that is not a URL (``user:pw@host:port``)
    loses its password the same way.
    """
    if "://" not in url:
        userinfo, at, host = url.rpartition("@")
        return f"{_mask_userinfo(userinfo)}@{host}" if at else url
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    shown = f"{scheme}://{_mask_userinfo(userinfo)}@{host}" if at else f"{scheme}://{netloc}"
    path, question, query = (slash + path).partition("?")
    if question:
        path += "?" + "&".join(_mask_param(p) for p in query.split("&"))
    return shown + path


# Query parameters redis-py (and Kafka URLs) read a secret from.
_SECRET_PARAMS = ("password", "passwd", "pass", "secret", "token", "sasl_plain_password")


def _mask_userinfo(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    return f"{user}:***" if colon else user


def _mask_param(param: str) -> str:
    name, eq, _value = param.partition("=")
    return f"{name}=***" if eq and name.lower() in _SECRET_PARAMS else param


def redact_text(text: str) -> str:
    """Every URL in ``text`` through :func:`redact_url` (a library's message may hold one)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)
