"""Bad flags of ``marketfeed up``, ``order``, ``positions`` and ``python -m order_flow``: one line
on stderr, exit 2, nothing started or written.

In-process, through the very ``main(argv)`` the entry points call (a fresh interpreter per case
cost a second of CPU each). The real thing, a process started as a user starts it, is kept once
per entry point: ``tests/integration/test_up.py``, ``test_cli_orders.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from marketfeed import cli
from order_flow import cli as order_flow_cli


def _code(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Exit code of ``main(argv)``: returned, or raised by argparse (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else -1


def _one_line(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert needle in lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["up", "--symbols", "0"], "--symbols=0"),
        (["up", "--orders-rate", "-1"], "--orders-rate=-1.0: must be a finite number >= 0"),
        (["up", "--accounts", "1000"], "--accounts=1000: must be between 1 and 999"),
        (["up", "--tradable", "600"], "--tradable=600: must be at most --symbols (500)"),
        (
            ["up", "--symbols", "20", "--watchlist", "30"],
            "--watchlist=30: must be at most --symbols",
        ),
        (["order", "buy", "AAAA", "notanumber"], "QTY: must be a whole number, got 'notanumber'"),
        (["order", "hold", "AAAA", "10"], "invalid choice: 'hold'"),
        (["positions", "--stale-after", "0"], "--stale-after=0.0: must be > 0"),
    ],
)
def test_marketfeed_rejects_bad_flags_with_one_line(
    argv: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MARKETFEED_STATE_DIR", str(tmp_path))
    assert _code(cli.main, argv) == 2
    _one_line(capsys, needle)
    assert not list(os.listdir(tmp_path))  # nothing started, nothing written


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--accounts", "0", "--tradable", "AAAA"], "--accounts=0: must be between 1 and 999"),
        (["--bootstrap", "127.0.0.1:1"], "--tradable: no symbols to trade given"),
    ],
)
def test_order_flow_rejects_bad_flags_with_one_line(
    flags: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _code(order_flow_cli.main, flags) == 2
    _one_line(capsys, needle)
