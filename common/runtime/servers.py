"""The two kinds of embedded server: a Tansu Kafka-protocol broker and a Redis server.

Both listen on 127.0.0.1 only (Tansu's listener is IPv4; ``localhost`` may resolve to ::1 first)
on a free port and are children of the process that starts them. The broker keeps everything in
memory. A Redis server does too, unless it is given a data directory: then it keeps an
append-only file there (fsync every second), and a server restarted on the same directory
comes back with what it held (``marketfeed up`` runs the services' Redis servers so: the order
ledger must outlive a Redis crash).

A Redis server given a ``password`` requires it (``requirepass``), runs in protected mode, and
has the commands that reconfigure, wipe or take over a server renamed away (:data:`DISABLED`):
another user of the machine can neither read nor rewrite a cache or the order ledger. The
password reaches the server through a config file only its owner can read, never its command
line, and the URL that clients are given carries it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from common.errors import RuntimeStartError
from common.runtime.binaries import broker_binary, redis_binary
from common.runtime.pki import Pki
from common.runtime.probes import redis_answers
from common.runtime.process import ChildProcess, free_port, tcp_accepts

HOST = "127.0.0.1"
_BROKER_STOP_S = 2.0

# Commands no client of a cache needs, each of which would let a client with the password
# reconfigure the server (CONFIG SET dir/dbfilename writes files), wipe it, load code into it
# or make it a replica of another server.
DISABLED = (
    "CONFIG",
    "DEBUG",
    "FLUSHALL",
    "FLUSHDB",
    "MODULE",
    "REPLICAOF",
    "SLAVEOF",
    "SHUTDOWN",
    "MIGRATE",
    "ACL",
)


class EmbeddedBroker(ChildProcess):
    """Tansu with its memory engine: data and committed offsets vanish when it stops."""

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        port: int | None = None,
        advertised_port: int | None = None,
    ) -> None:
        """``advertised_port``: where clients are told to connect (a TLS terminator in front)."""
        self.port = port or free_port(HOST)
        self.advertised_port = advertised_port
        url = f"tcp://{HOST}:{self.port}"
        advertised = f"tcp://{HOST}:{advertised_port or self.port}"
        # Its stop is the last of a run, and there is nothing left to save in a memory engine:
        # a short grace, then the kill that a SIGTERM ignored (below) needs anyway.
        super().__init__(
            name="broker",
            argv=[
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            ready=lambda: tcp_accepts(HOST, self.port),
            log_path=log_path,
            stop_timeout=_BROKER_STOP_S,
            known_to_hang="Tansu 0.6.0 ignores SIGTERM now and then while clients are connected",
        )

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.advertised_port or self.port}"

    @property
    def where(self) -> str:
        return f"broker at {HOST}:{self.port}"


class BrokerTls(ChildProcess):
    """The TLS terminator in front of the broker (``common.runtime.tlsproxy``), a child too:
    clients connect here with a certificate of the run's CA; the broker advertises this port."""

    def __init__(self, *, pki: Pki, broker_port: int, port: int, log_path: Path | None) -> None:
        self.port = port
        super().__init__(
            name="broker-tls",
            argv=[
                sys.executable,
                "-m",
                "common.runtime.tlsproxy",
                f"--listen={port}",
                f"--target={broker_port}",
                f"--ca={pki.ca}",
                f"--cert={pki.server.cert}",
                f"--key={pki.server.key}",
            ],
            ready=lambda: tcp_accepts(HOST, self.port),
            log_path=log_path,
        )

    @property
    def where(self) -> str:
        return f"TLS terminator at {HOST}:{self.port}"


class EmbeddedRedis(ChildProcess):
    """A Redis server: in memory only, or with an append-only file in ``data_dir``."""

    def __init__(
        self,
        *,
        name: str,
        log_path: Path | None = None,
        port: int | None = None,
        data_dir: Path | None = None,
        password: str | None = None,
    ) -> None:
        self.service = name
        self.port = port or free_port(HOST)
        self.data_dir = data_dir
        self.password = password
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            persistence = [
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ]
        else:
            persistence = ["--appendonly", "no"]
        if password is None:
            access = ["--protected-mode", "no"]
        else:
            access = ["--protected-mode", "yes"]
            for command in DISABLED:
                access += ["--rename-command", command, ""]
        self._conf: Path | None = None
        super().__init__(
            name=f"redis[{name}]",
            argv=[
                redis_binary(),
                *([] if password is None else [str(self._write_conf(password))]),
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                *persistence,
                *access,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            ready=lambda: redis_answers(HOST, self.port, timeout=1.0),
            log_path=log_path,
        )

    def _write_conf(self, password: str) -> Path:
        # 0600 from its creation (mkstemp), removed once the server has read it (stop()).
        fd, name = tempfile.mkstemp(prefix=f"redis-{self.service}-", suffix=".conf")
        with os.fdopen(fd, "w") as conf:
            conf.write(f'requirepass "{password}"\n')
        self._conf = Path(name)
        return self._conf

    async def _start(self) -> None:
        try:
            await super()._start()
        finally:
            if self._conf is not None:
                self._conf.unlink(missing_ok=True)

    @property
    def url(self) -> str:
        """How a client connects, the password included (log it through ``redact_url``)."""
        auth = "" if self.password is None else f":{self.password}@"
        return f"redis://{auth}{HOST}:{self.port}/0"

    @property
    def where(self) -> str:
        return f"{self.name} at {HOST}:{self.port}"

    def again(self) -> EmbeddedRedis:
        """A server to start in place of this one: same port, log and data directory."""
        return EmbeddedRedis(
            name=self.service,
            log_path=self.log_path,
            port=self.port,
            data_dir=self.data_dir,
            password=self.password,
        )


def forget_data(data_dir: Path) -> None:
    """Remove the files a Redis server keeps in ``data_dir`` (an earlier run's, not ours)."""
    for name in ("appendonly.aof", "dump.rdb"):
        (data_dir / name).unlink(missing_ok=True)


__all__ = ["HOST", "BrokerTls", "EmbeddedBroker", "EmbeddedRedis", "RuntimeStartError"]
