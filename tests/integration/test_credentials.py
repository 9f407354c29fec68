"""Credentials on a hop, and errors about them: one line, never the secret.

A real Redis server started with a password: the right one reads, a wrong or missing one and an
unreachable server each give one line naming the server without its password; a URL that is not
one is refused before anything connects (exit 2). Each command runs in-process through
``marketfeed``'s ``main(argv)``, as a user's shell would run it (a subprocess costs seconds).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from common.runtime import EmbeddedStack
from common.runtime.binaries import redis_binary
from common.runtime.process import free_port
from common.runtime.servers import DISABLED
from marketfeed.cli import main

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[int]:
    """A Redis server that wants PASSWORD, configured as ``up`` runs its own."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write(f'requirepass "{PASSWORD}"\n')
        conf.flush()
        renames = [a for c in DISABLED for a in ("--rename-command", c, "")]
        argv = [redis_binary(), conf.name, "--port", str(port), "--bind", "127.0.0.1"]
        proc = subprocess.Popen(
            [*argv, "--save", "", "--protected-mode", "yes", *renames],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_listener(port, proc)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_for_listener(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert proc.poll() is None, "redis-server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError("redis-server did not listen")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_right_password_reads(locked_redis: int, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/0"
    code, out, err = _run(capsys, "positions", "--redis-url", url, "--bootstrap", "127.0.0.1:1")
    assert code == EXIT_OK, err
    assert out.startswith("ACCOUNT")


def test_what_a_client_with_the_password_still_cannot_do(locked_redis: int) -> None:
    client = redis.Redis(port=locked_redis, password=PASSWORD)
    try:
        assert client.ping()
        for command in (("CONFIG", "GET", "dir"), ("FLUSHALL",), ("DEBUG", "SLEEP", "0")):
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("command", "url", "expected"),
    [
        ("positions", "redis://:wr0ng-pw@127.0.0.1:{port}/0", "refused the credentials"),
        ("quote", "redis://:wr0ng-pw@127.0.0.1:{port}/0", "refused the credentials"),
        ("lag", "redis://:wr0ng-pw@127.0.0.1:{port}/0", "refused the credentials"),
        ("positions", "redis://127.0.0.1:{port}/0", "requires a password"),
        ("quote", f"redis://:{PASSWORD}@127.0.0.1:{{free}}/0", "cannot reach Redis at"),
        ("positions", f"redis://:{PASSWORD}@127.0.0.1:{{free}}/0", "cannot reach Redis at"),
    ],
)
def test_a_wrong_missing_or_unreachable_redis_is_one_line_without_the_secret(
    locked_redis: int,
    stack: EmbeddedStack,
    capsys: pytest.CaptureFixture[str],
    command: str,
    url: str,
    expected: str,
) -> None:
    url = url.format(port=locked_redis, free=free_port())
    args = ["AAAA"] if command == "quote" else []
    code, _, err = _run(capsys, command, *args, "--redis-url", url, "--bootstrap", stack.bootstrap)
    assert code == EXIT_FAILURE
    line = _one_line(err)
    assert expected in line
    assert line.startswith(f"marketfeed {command}: ")
    assert PASSWORD not in err
    assert "wr0ng" not in err
    if ":***@" not in line:
        assert "requires a password" in line


@pytest.mark.parametrize("command", ["quote", "lag", "positions", "api"])
@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:notaport/0",
        f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/zero",
        "localhost:6379",
    ],
)
def test_a_bad_redis_url_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], command: str, url: str
) -> None:
    args = ["AAAA"] if command == "quote" else []
    code, _, err = _run(capsys, command, *args, "--redis-url", url, "--bootstrap", "127.0.0.1:1")
    assert code == EXIT_USAGE
    line = _one_line(err)
    assert "--redis-url=" in line
    assert PASSWORD not in err


def test_help_and_errors_never_show_a_sasl_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETFEED_SASL_PASSWORD", PASSWORD)
    with pytest.raises(SystemExit):
        main(["quote", "--help"])
    assert PASSWORD not in capsys.readouterr().out
    code, _, err = _run(
        capsys,
        "quote",
        "AAAA",
        "--security-protocol",
        "SASL_SSL",
        "--bootstrap",
        "127.0.0.1:1",
        "--redis-url",
        "redis://127.0.0.1:1/0",
    )
    assert code == EXIT_USAGE
    assert "--sasl-username" in _one_line(err)
    assert PASSWORD not in err
