"""GapRequests: one snapshot request at a time, at most one a period, answered in the background."""

from __future__ import annotations

import asyncio
from typing import Any

from common.cache.snapshots import GapRequests, Snapshot


class _Client:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.answer = asyncio.Event()

    async def request(self, symbols: list[str], timeout: float) -> Snapshot | None:
        self.asked.append(symbols)
        await self.answer.wait()
        return Snapshot(epoch=1, quotes=[], positions={}, missing=list(symbols))


async def test_gaps_are_asked_once_and_answered_later() -> None:
    client = _Client()
    gaps = GapRequests(client, timeout=1.0, every=0.0)  # type: ignore[arg-type]
    assert gaps.take() is None  # nothing noted: nothing asked
    gaps.note({"B", "A"})
    assert gaps.take() is None
    gaps.note({"C"})
    await asyncio.sleep(0)
    assert gaps.take() is None  # one request at a time: C waits for the answer to A, B
    assert client.asked == [["A", "B"]]
    client.answer.set()
    await asyncio.sleep(0)
    answer: Any = gaps.take()
    assert answer.missing == ["A", "B"]
    await asyncio.sleep(0)
    assert client.asked == [["A", "B"], ["C"]]
    await gaps.close()
    await gaps.close()


async def test_a_request_waits_for_its_period() -> None:
    client = _Client()
    gaps = GapRequests(client, timeout=1.0, every=60.0)  # type: ignore[arg-type]
    gaps.note({"A"})
    gaps.take()
    client.answer.set()
    await asyncio.sleep(0)
    gaps.note({"B"})
    assert gaps.take() is not None
    await asyncio.sleep(0)
    assert client.asked == [["A"]]  # B is asked only a minute after A
    await gaps.close()
