"""The suite's guards against a stuck test, run in a pytest session of their own (pytester).

A broker frozen with SIGSTOP looks to clients exactly like the hung Tansu seen here
(connections open, nothing answered): the watch must fail the test that waits on it, the test's
own clean-up must run, and its rerun must pass on a new broker. A test over its timeout must be
cancelled, not abandoned, and fail with "Timeout" on both attempts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inner import REPO, run_inner

INNER_TESTS = """
import asyncio, contextlib, os, pathlib, signal
import pytest
from aiokafka import AIOKafkaProducer

MARKS = pathlib.Path(os.environ["INNER_MARKS"])

@contextlib.asynccontextmanager
async def cleaned_up(name):
    try:
        yield
    finally:
        with (MARKS / f"{name}.cleaned").open("a") as f:
            f.write("x")  # one x an attempt

async def test_waits_on_a_hung_broker(stack):
    async with cleaned_up("hung"):
        frozen = MARKS / "frozen"
        if not frozen.exists():  # the first attempt only
            frozen.touch()
            os.kill(stack.broker.pid, signal.SIGSTOP)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("inner", b"value")
        finally:
            await producer.stop()

@pytest.mark.timeout(1)
async def test_over_its_timeout():
    async with cleaned_up("slow"):
        await asyncio.sleep(60)
"""


def test_a_hung_broker_and_a_slow_test_fail_fast_clean_up_and_rerun(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("INNER_MARKS", str(marks))
    monkeypatch.setenv("MARKETFEED_TEST_BROKER_GRACE", "2")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    inner = pytester.makepyfile(test_inner=INNER_TESTS)
    # One process: the watch's and the interruption's lines must reach this output, and the
    # two inner tests must share (and replace) one broker, as in a plain run.
    result, out = run_inner(
        pytester,
        inner,
        "-p",
        "tests.integration.conftest",
        "--log-cli-level=WARNING",
        "-rR",
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "has not answered for" in out
    assert "does not answer; replacing it" in out  # the rerun ran on a new broker
    assert "CancelledError: Timeout: the test ran over its 1s timeout" in out
    # Both attempts of each test ran their clean-up, the interrupted ones too.
    assert (marks / "hung.cleaned").read_text() == "xx"
    assert (marks / "slow.cleaned").read_text() == "xx"
