"""``marketfeed up`` as a user runs it: starts everything, reports, stops everything.

``up`` is started as a terminal starts a job: in a process group (here a session) of its own,
and Ctrl-C is SIGINT to that whole group, as the terminal sends it. The stop must be clean:
within seconds, in order, one line per part on stderr, no kill, no traceback in any log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from common.errors import BrokerUnavailableError
from common.kafka import KafkaSettings, ensure_topics
from common.kafkasec import security_fields
from common.schema import OrderFilled, OrderRejected
from marketfeed.order import place
from marketfeed.state import load_state
from tests.helpers import communicate, eventually, market_buy, marketfeed_command, spawn

# Far above the 2-4 s a stop takes, for a loaded machine; a forced kill would take 10 s each.
STOP_BOUND_S = 25
STOP_ORDER = [
    "order_flow|api",
    "order_entry|portfolio",
    "publisher",
    r"redis\[\w+\]",
    "broker(-tls)?",  # the TLS terminator of up --tls stops with the broker
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits to be reaped by whoever inherited it.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


class UpRun:
    """A running ``marketfeed up`` (maybe behind ``| tee``): its output, as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, tmp: Path) -> None:
        self.proc = proc
        self.tmp = tmp
        self.out = ""
        self.err = ""
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, "out")),
            asyncio.create_task(self._read(proc.stderr, "err")),
        ]

    async def _read(self, stream: asyncio.StreamReader | None, name: str) -> None:
        assert stream is not None
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))

    @property
    def state(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.tmp / "state" / "up.json").read_text())
        return data

    async def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        async def ready() -> bool:
            assert self.proc.returncode is None, f"up exited before {what}:\n{self.err}"
            return check()

        await eventually(ready, timeout=timeout, what=what)

    async def ended(self) -> int:
        """Its exit code, once it and its output have ended (within STOP_BOUND_S)."""
        async with asyncio.timeout(STOP_BOUND_S):
            await asyncio.gather(*self._readers)
            return await self.proc.wait()

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in (self.tmp / "logs").glob("*.log")}


@asynccontextmanager
async def up(tmp: Path, *flags: str, tee: bool = False) -> AsyncIterator[UpRun]:
    """``marketfeed up FLAGS`` (or ``... | tee FILE``) in a session of its own."""
    env = {
        **os.environ,
        "MARKETFEED_STATE_DIR": str(tmp / "state"),
        "MARKETFEED_SESSION_TIMEOUT": "2",  # the services' group joins take ~1 s, not ~3 s
    }
    argv = [sys.executable, "-m", "marketfeed", "up", "--log-dir", str(tmp / "logs"), *flags]
    if tee:
        argv = ["bash", "-c", f"{' '.join(argv)} | tee {tmp / 'tee.out'}"]
    proc = await spawn(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    run = UpRun(proc, tmp)
    try:
        yield run
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the test failed; its children die with it
            await proc.wait()


def ctrl_c(run: UpRun) -> None:
    """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
    os.killpg(run.proc.pid, signal.SIGINT)


def assert_stopped_cleanly(run: UpRun, pids: dict[str, int]) -> None:
    """Every part stopped, in order, one line each; no kill, no traceback; nothing left."""
    stopped = re.findall(r"^marketfeed up: stopped (\S+) in [\d.]+s$", run.err, re.MULTILINE)
    stopped.remove("everything")
    assert set(stopped) == set(pids), run.err
    ranks = [next(i for i, p in enumerate(STOP_ORDER) if re.fullmatch(p, n)) for n in stopped]
    assert ranks == sorted(ranks), stopped
    assert "marketfeed up: stopped everything in" in run.err
    assert "killed" not in run.err, run.err
    for name, text in run.logs().items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
        assert "killing it" not in text, name
        assert "Exception ignored" not in text, name
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not (run.tmp / "state" / "up.json").exists()


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def _redis_passwords(run: UpRun) -> list[str]:
    """The run's Redis passwords, from up.json (its owner's only), each one required."""
    state_file = run.tmp / "state" / "up.json"
    assert state_file.stat().st_mode & 0o077 == 0
    assert (run.tmp / "state").stat().st_mode & 0o077 == 0
    urls = run.state["redis"]
    assert isinstance(urls, dict)
    passwords = []
    for url in urls.values():
        password = urlsplit(url).password
        assert password, url
        with (
            redis.Redis.from_url(url.replace(password, "wrong")) as client,
            pytest.raises(redis.AuthenticationError),
        ):
            client.ping()
        passwords.append(password)
    return passwords


def _read(path: Path) -> str:
    return path.read_text()


def orders_answered(run: UpRun) -> bool:
    return bool(re.search(r"orders\.events hw [1-9]", run.out))


async def test_ctrl_c_stops_everything_in_order_in_seconds(tmp_path: Path) -> None:
    async with up(tmp_path, "--rate", "1000", "--orders-rate", "5") as run:
        # Up and answering end to end: orders sent, answered, filled into positions.
        await run.wait_for(lambda: orders_answered(run), "orders answered")
        pids = run.state["processes"]
        assert isinstance(pids, dict)
        # The Redis passwords, the API's token and the feed key: up.json's secrets.
        token, key_file = run.state["api_token"], run.state["feed_key_file"]
        assert isinstance(token, str)
        assert isinstance(key_file, str)
        feed_keys = _read(Path(key_file)).split()
        secrets = [*_redis_passwords(run), token, *feed_keys]
        for pid in pids.values():  # a command line is anyone's to read (ps)
            cmdline = _cmdline(pid)
            assert not [s for s in secrets if s in cmdline], cmdline
        ctrl_c(run)
        assert await run.ended() == 0, run.err
    assert_stopped_cleanly(run, pids)
    # No secret in anything the run printed or logged.
    for name, text in {"stdout": run.out, "stderr": run.err, **run.logs()}.items():
        assert not [s for s in secrets if s in text], name
    assert "stopping everything (Ctrl-C again to kill at once)" in run.err
    # The order flow stopped first: everything it sent was acknowledged.
    flow = run.logs()["order_flow.log"]
    counts = re.search(r"stopped: (\d+) sent, (\d+) acked, 0 failed;", flow)
    assert counts, flow[-2000:]
    assert counts.group(1) == counts.group(2)
    # The publisher flushed before the broker went away.
    assert re.search(r"stopped: \d+ sent, \d+ acked, 0 lost", run.logs()["publisher.log"])
    # The status line: the generation being written and the broker's memory (the embedded
    # broker: generations).
    status = [line for line in run.out.splitlines() if "published" in line]
    assert status, run.out
    assert re.search(r"md\.quotes g\d+ hw [\d,]+  md\.trades g\d+ hw", status[-1]), status[-1]
    assert re.search(r"\| broker \d+ MB", status[-1]), status[-1]
    assert "history: generations" in run.out


async def test_ctrl_c_through_tee_still_tells_each_stop(tmp_path: Path) -> None:
    """``up | tee out``: Ctrl-C kills tee too; the stop lines go to stderr, EPIPE is survived."""
    async with up(tmp_path, "--rate", "500", "--orders-rate", "0", tee=True) as run:
        await run.wait_for(lambda: "published" in run.out, "a status line through tee")
        pids = run.state["processes"]
        assert isinstance(pids, dict)
        ctrl_c(run)
        await run.ended()  # bash's own code is tee's (killed by SIGINT)
    assert_stopped_cleanly(run, pids)
    assert "BrokenPipeError" not in run.err, run.err
    assert "Traceback" not in run.err, run.err
    assert "exit code 0" in (tmp_path / "logs" / "up.log").read_text()


async def test_a_dead_redis_is_restarted_and_a_dead_broker_stops_everything(
    tmp_path: Path,
) -> None:
    async with up(tmp_path, "--rate", "500", "--orders-rate", "5") as run:
        await run.wait_for(lambda: orders_answered(run), "orders answered")
        state = run.state
        pids = state["processes"]
        assert isinstance(pids, dict)
        os.kill(pids["redis[order_entry]"], signal.SIGKILL)
        await run.wait_for(lambda: "redis[order_entry] at" in run.err, "the Redis restart")
        await run.wait_for(lambda: " restarted in " in run.err, "the Redis restart")
        pids = run.state["processes"]  # the new Redis server's pid
        assert isinstance(pids, dict)
        os.kill(pids["broker"], signal.SIGKILL)
        assert await run.ended() == 1, run.err
    lines = run.err.splitlines()
    assert any(
        re.fullmatch(
            rf"marketfeed up: broker at {state['bootstrap']} exited \(signal 9, SIGKILL\); "
            "stopping everything",
            line,
        )
        for line in lines
    ), run.err
    # The other children were asked to stop, and killed after a short grace if they waited
    # on the broker: no warning, no traceback.
    assert "killing it" not in run.err
    for name, text in run.logs().items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
    assert not [name for name, pid in pids.items() if _alive(pid)]


async def test_duration_stops_cleanly_whatever_has_started(tmp_path: Path) -> None:
    """A stop that comes while the services still start (a short --duration) is clean too."""
    async with up(tmp_path, "--duration", "2", "--rate", "500") as run:
        await run.wait_for((tmp_path / "state" / "up.json").exists, "up.json")
        pids = run.state["processes"]
        assert isinstance(pids, dict)
        assert await run.ended() == 0, run.err
    assert "--duration 2s reached; stopping everything" in run.err
    assert_stopped_cleanly(run, pids)


# The other bad flags of `up`, in-process through the same main(): tests/unit/test_bad_flags.py.
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--rate", "-1"], "--rate=-1.0: must be > 0"),
        (["--log-dir", "/proc/forbidden"], "--log-dir /proc/forbidden: cannot write there"),
    ],
)
async def test_up_rejects_bad_flags_with_one_line(
    flags: list[str], needle: str, tmp_path: Path
) -> None:
    code, _, err = await marketfeed_command("up", *flags, state_dir=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert needle in lines[0]
    assert not list(os.listdir(tmp_path))  # nothing started, nothing written


async def test_version() -> None:
    proc = await spawn(
        sys.executable, "-m", "marketfeed", "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await communicate(proc)
    assert proc.returncode == 0
    assert re.fullmatch(r"marketfeed \d+\.\d+\.\d+\S*\n", out.decode())


async def test_up_tls_every_client_over_tls_and_anyone_else_refused_in_one_line(
    tmp_path: Path,
) -> None:
    async with up(tmp_path, "--tls", "--rate", "500", "--orders-rate", "5") as run:
        # The services (order flow -> order_entry -> portfolio) answer orders through TLS.
        await run.wait_for(lambda: orders_answered(run), "orders answered over TLS")
        pids = run.state["processes"]
        assert isinstance(pids, dict)
        assert "broker-tls" in pids
        state = load_state(tmp_path / "state")
        security = state.security()
        assert security.security_protocol == "SSL"
        assert security.ssl_keyfile is not None
        assert security.ssl_keyfile.stat().st_mode & 0o077 == 0
        # The CLI's way: up.json's certificate; a market order is answered (filled, or
        # rejected when the quiet symbol's quote is older than --stale-after: an answer too).
        kafka = KafkaSettings(
            bootstrap=state.bootstrap, connect_timeout=10, **security_fields(security)
        )
        events = await place(market_buy("AAAA"), kafka, timeout=20)
        assert events, "no answer over TLS"
        assert isinstance(events[-1], OrderFilled | OrderRejected), events
        # A plaintext client, and one that trusts the CA but has no certificate of its own.
        for settings, expected in [
            (KafkaSettings(bootstrap=state.bootstrap), "accepts TLS only"),
            (
                KafkaSettings(
                    bootstrap=state.bootstrap,
                    security_protocol="SSL",
                    ssl_cafile=security.ssl_cafile,
                ),
                "right after the TLS handshake",
            ),
        ]:
            with pytest.raises(BrokerUnavailableError) as refused:
                await ensure_topics(replace(settings, connect_timeout=0.5), [])
            assert expected in str(refused.value)
            assert "\n" not in str(refused.value)
        ctrl_c(run)
        assert await run.ended() == 0, run.err
    assert_stopped_cleanly(run, pids)
