"""``marketfeed order`` and ``marketfeed positions`` as a user runs them, against a real ``up``.

One ``marketfeed up`` subprocess serves the whole module (starting one costs seconds, and
order_entry's consumer group join a few more): small market, and a simulated order flow with
more limit and bad orders than by default so that every outcome shows up within seconds. The
fixture stops it at the end and checks that nothing it started is still running.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.schema import OrderCancelled, OrderFilled, OrderRejected, decode
from common.schema.orders import (
    REJECT_LIMIT_OUT_OF_BAND,
    REJECT_QTY_TOO_LARGE,
    REJECT_UNKNOWN_SYMBOL,
)
from marketfeed.positions import PositionsSettings, Row, lookup
from tests.helpers import communicate, eventually, marketfeed_command, spawn

# A first order waits for order_entry's group join (a few seconds on Tansu); generous, because
# a retried buy could be filled twice: one order, one long wait.
FIRST_ORDER_TIMEOUT_S = 40


@dataclass(frozen=True, slots=True)
class UpRun:
    env: dict[str, str]
    state: dict[str, object]
    out: Path
    tmp: Path

    @property
    def bootstrap(self) -> str:
        return str(self.state["bootstrap"])

    @property
    def portfolio_redis(self) -> str:
        redis = self.state["redis"]
        assert isinstance(redis, dict)
        return str(redis["portfolio"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest_asyncio.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[UpRun]:
    tmp = tmp_path_factory.mktemp("cli-orders")
    env = {
        **os.environ,
        "MARKETFEED_STATE_DIR": str(tmp / "state"),
        "MARKETFEED_SESSION_TIMEOUT": "2",  # the services' group joins take ~1 s, not ~3 s
        # Order flow settings `up` has no flag for: it builds the child's config from its own env.
        "MARKETFEED_LIMIT_RATIO": "0.4",
        "MARKETFEED_BAD_RATIO": "0.3",
    }
    out_path = tmp / "up.out"
    with out_path.open("wb") as out:
        proc = await spawn(
            sys.executable,
            "-m",
            "marketfeed",
            "up",
            "--symbols",
            "50",
            "--rate",
            "1000",
            "--seed",
            "7",
            "--watchlist",
            "5",
            "--orders-rate",
            "10",
            "--accounts",
            "3",
            "--status-interval",
            "0.5",
            "--log-dir",
            str(tmp / "logs"),
            stdout=out,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    state_file = tmp / "state" / "up.json"
    try:
        async with asyncio.timeout(30):
            while not state_file.exists():
                assert proc.returncode is None, "up exited before it was ready"
                await asyncio.sleep(0.05)
        state = json.loads(state_file.read_text())
        yield UpRun(env=env, state=state, out=out_path, tmp=tmp)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 40)
        except TimeoutError:
            proc.kill()  # its children die with it (parent-death signal)
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode()
    pids = state["processes"]
    assert set(pids) >= {"broker", "publisher", "order_entry", "portfolio", "order_flow"}
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not state_file.exists()


async def marketfeed(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await marketfeed_command(*args, env=env, timeout=FIRST_ORDER_TIMEOUT_S + 20)


async def positions_of(run: UpRun, account: str) -> list[Row]:
    settings = PositionsSettings(
        bootstrap=run.bootstrap,
        redis_url=run.portfolio_redis,
        account=(account,),
        stale_after=60.0,
    )
    return await lookup(settings)


async def test_market_buy_fills_and_shows_in_positions_with_a_mark(up: UpRun) -> None:
    code, out, err = await marketfeed(
        up.env,
        "order",
        "buy",
        "AAAA",
        "10",
        "--account",
        "cli-buyer",
        "--timeout",
        str(FIRST_ORDER_TIMEOUT_S),
    )
    assert code == 0, out + err
    filled = re.search(r"^FILLED\s+bought 10 AAAA at ([0-9.]+)$", out, re.MULTILINE)
    assert filled, out
    price = float(filled.group(1))
    assert "ACCEPTED" in out

    async def held() -> bool:
        rows = await positions_of(up, "cli-buyer")
        return bool(rows) and rows[0].mark is not None

    await eventually(held, timeout=15, what="portfolio to hold the fill, marked")
    code, out, err = await marketfeed(up.env, "positions", "--json", "--account", "cli-buyer")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["account"] == "cli-buyer"
    assert row["symbol"] == "AAAA"
    assert row["qty"] == 10
    assert row["avg_price"] == pytest.approx(price, abs=5e-5)  # printed with 4 decimals
    assert row["realised"] == 0.0
    assert row["mark"] > 0
    assert row["mark_age_s"] >= 0
    assert row["unrealised"] == pytest.approx(10 * (row["mark"] - row["avg_price"]))


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (["buy", "ZZZZ", "10"], "UNKNOWN_SYMBOL"),
        (["sell", "AAAA", "1000000"], "QTY_TOO_LARGE"),
    ],
)
async def test_rejected_order_exits_non_zero_with_the_reason(
    up: UpRun, order: list[str], reason: str
) -> None:
    code, out, err = await marketfeed(
        up.env, "order", *order, "--account", "cli-rejected", "--timeout", "30"
    )
    assert code == 1, out + err
    rejected = [line for line in out.splitlines() if line.startswith("REJECTED")]
    assert len(rejected) == 1, out
    assert f"{order[1]}: {reason}: " in rejected[0]
    assert "FILLED" not in out
    assert "ACCEPTED" not in out


async def test_simulated_order_flow_reaches_every_outcome_and_positions(up: UpRun) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=up.bootstrap, enable_auto_commit=False)
    await consumer.start()
    terminal: dict[str, list[object]] = {}
    outcomes: set[str] = set()
    try:
        partitions = up.state["partitions"]
        assert isinstance(partitions, int)
        tps = [TopicPartition("orders.events", p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        want = {
            "filled",
            "cancelled",
            REJECT_UNKNOWN_SYMBOL,
            REJECT_QTY_TOO_LARGE,
            REJECT_LIMIT_OUT_OF_BAND,
        }

        async def every_outcome() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    order_id = getattr(event, "order_id", "")
                    if not order_id.startswith("flow-"):
                        continue
                    if isinstance(event, OrderFilled):
                        outcomes.add("filled")
                        assert event.account.startswith("acct-0")
                    elif isinstance(event, OrderCancelled):
                        outcomes.add("cancelled")
                        assert "not marketable" in event.text
                    elif isinstance(event, OrderRejected):
                        outcomes.add(event.reason)
                    else:
                        continue
                    terminal.setdefault(order_id, []).append(event)
            return want <= outcomes

        await eventually(every_outcome, timeout=40, what=f"order flow outcomes {want}")
    finally:
        await consumer.stop()
    # Exactly one terminal event per order, whatever the outcome.
    assert all(len(events) == 1 for events in terminal.values())

    async def accounts_held() -> bool:
        rows = [r for a in ("acct-01", "acct-02", "acct-03") for r in await positions_of(up, a)]
        return any(r.mark is not None for r in rows)

    await eventually(accounts_held, timeout=15, what="positions of the simulated accounts")

    # The status line of up shows the order flow too.
    def order_figures() -> tuple[int, int]:
        lines = [line for line in up.out.read_text().splitlines() if "orders.events hw" in line]
        if not lines:
            return 0, 0
        commands = re.search(r"orders\.commands hw ([0-9,]+)", lines[-1])
        events = re.search(r"orders\.events hw ([0-9,]+)", lines[-1])
        assert commands, lines[-1]
        assert events, lines[-1]
        return int(commands.group(1).replace(",", "")), int(events.group(1).replace(",", ""))

    async def status_shows_orders() -> bool:
        commands, events = order_figures()
        return commands > 0 and events > 0

    await eventually(status_shows_orders, timeout=10, what="order figures in the status line")


# The other bad flags of `order` and `positions`, in-process through the same main():
# tests/unit/test_bad_flags.py.
@pytest.mark.parametrize(
    ("args", "needle"),
    [(["order", "buy", "AAAA", "10", "--limit", "-1"], "--limit=-1.0: must be > 0")],
)
async def test_bad_flags_give_one_line_and_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    env = {**os.environ, "MARKETFEED_STATE_DIR": str(tmp_path)}
    code, out, err = await marketfeed(env, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]


@pytest.mark.parametrize("command", [["order", "buy", "AAAA", "10"], ["positions"]])
async def test_without_up_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    env = {**os.environ, "MARKETFEED_STATE_DIR": str(tmp_path / "nothing")}
    code, out, err = await marketfeed(env, *command)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"marketfeed {command[0]}: no running `marketfeed up` found" in lines[0]


# Its other bad flags, in-process through the same main(): tests/unit/test_bad_flags.py.
@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--orders-rate", "0", "--tradable", "AAAA"], "--orders-rate=0.0: must be > 0")],
)
async def test_order_flow_rejects_bad_flags_with_one_line(flags: list[str], needle: str) -> None:
    proc = await spawn(
        sys.executable,
        "-m",
        "order_flow",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await communicate(proc)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
