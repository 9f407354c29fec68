"""``marketfeed``: subcommands are imported lazily; ``--help`` and ``--version`` import none.

Each case runs the real command in a fresh interpreter and looks at ``sys.modules`` afterwards:
the read commands must not load faust or numpy (they did when every subcommand was imported
up front: ~850 modules and a second of start-up for ``marketfeed quote``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketfeed.cli import BENCHES, COMMANDS, chosen

HEAVY = ("faust", "numpy", "matplotlib", "hdrh")
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_BROKER = "127.0.0.1:1"

# Runs `marketfeed ARGS...`, then prints the names of the modules it loaded on stdout's last line.
_PROBE = (
    "import json, sys\n"
    "from marketfeed.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


def run(tmp_path: Path, *args: str) -> tuple[int, set[str], str]:
    env = {**os.environ, "MARKETFEED_STATE_DIR": str(tmp_path / "no-up")}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"]), proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["quote", "AAAA", "--redis-url", DEAD_REDIS, "--bootstrap", DEAD_BROKER],
        ["lag", "--redis-url", DEAD_REDIS, "--bootstrap", DEAD_BROKER, "--connect-timeout", "0.2"],
        ["order", "buy", "AAAA", "1", "--bootstrap", DEAD_BROKER, "--timeout", "0.2"],
        ["positions", "--redis-url", DEAD_REDIS, "--bootstrap", DEAD_BROKER],
    ],
    ids=lambda args: args[0],
)
def test_read_commands_load_neither_faust_nor_numpy(tmp_path: Path, args: list[str]) -> None:
    code, modules, _ = run(tmp_path, *args)
    assert code == 1  # nothing answers: one line, exit 1, after going all the way to I/O
    assert not {m.split(".")[0] for m in modules} & set(HEAVY)
    assert not {m for m in modules if m.startswith(("marketfeed.bench", "order_entry."))}


def test_help_lists_every_command_without_importing_any(tmp_path: Path) -> None:
    code, modules, out = run(tmp_path, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command.name in out
        assert command.module not in modules
    assert "importlib.metadata" not in modules


def test_version(tmp_path: Path) -> None:
    code, _, out = run(tmp_path, "--version")
    assert code == 0
    assert out.splitlines()[0].startswith("marketfeed ")


def test_a_command_loads_only_its_own_module(tmp_path: Path) -> None:
    code, modules, out = run(tmp_path, "order-flow", "--help")
    assert code == 0
    assert "--orders-rate" in out
    loaded = {c.module for c in [*COMMANDS, *BENCHES] if c.module in modules}
    assert loaded == {"order_flow.cli"}


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([], ()),
        (["--help"], ()),
        (["quote", "AAAA", "--json"], ("quote",)),
        (["--version", "lag", "--watch"], ("lag",)),
        (["bench", "orders", "--rates", "1"], ("bench", "orders")),
        (["bench", "--help"], ("bench",)),
    ],
)
def test_chosen_names_the_subcommand(argv: list[str], names: tuple[str, ...]) -> None:
    assert chosen(argv) == names
