"""up.json: a stopping `up` removes its own state file, never another run's."""

from __future__ import annotations

import os
from pathlib import Path

from marketfeed.state import STATE_FILE, UpState, remove_state


def _state(pid: int) -> UpState:
    return UpState(
        pid=pid,
        bootstrap="127.0.0.1:1",
        topic_prefix="",
        partitions=4,
        redis={},
        log_dir="/tmp",
    )


def test_a_run_removes_its_own_state_file(tmp_path: Path) -> None:
    path = _state(os.getpid()).write(tmp_path)
    remove_state(tmp_path, pid=os.getpid())
    assert not path.exists()


def test_a_run_leaves_the_state_file_of_a_later_run_alone(tmp_path: Path) -> None:
    # A second `up` in the same state directory wrote its own file while the first one ran.
    path = _state(os.getpid() + 1).write(tmp_path)
    remove_state(tmp_path, pid=os.getpid())
    assert path.exists()
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600


def test_an_unreadable_state_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    path.write_text("[not, json")
    remove_state(tmp_path, pid=os.getpid())
    assert path.exists()
