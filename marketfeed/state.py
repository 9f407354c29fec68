"""Where a running ``marketfeed up`` is: a small JSON file that read commands find by default.

``up`` writes it once its servers are ready and removes it when it stops; a file left by an
``up`` that was killed is recognised by its dead pid and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.config import build
from common.errors import ConfigError, StateNotFoundError
from common.kafkasec import KafkaSecurity
from common.privatefile import write_private

STATE_DIR_ENV = "MARKETFEED_STATE_DIR"
STATE_FILE = "up.json"
# In up's run directory, readable by its user only: the run's feed key (the signed feed).
FEED_KEY_FILE = "feed.key"


def state_dir() -> Path:
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "marketfeed"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpState:
    pid: int
    bootstrap: str
    topic_prefix: str
    partitions: int
    redis: dict[str, str]
    log_dir: str
    group: str = ""  # the namespace of its consumer groups (``--group`` of its services)
    feed_key_file: str = ""  # where the run's feed key is (mode 0600), for read commands
    processes: dict[str, int] = field(default_factory=dict)
    api: str = ""  # the HTTP API and dashboard, ``http://127.0.0.1:PORT/``
    api_token: str = ""  # the token every request to it must carry (Authorization: Bearer)
    metrics: dict[str, str] = field(default_factory=dict)  # process -> its /metrics URL
    # How to connect to its broker (``up --tls``: SSL with the run's CA and client
    # certificate); absent: plaintext.
    kafka_security: dict[str, str] = field(default_factory=dict)

    def security(self) -> KafkaSecurity:
        try:
            return build(KafkaSecurity, self.kafka_security, environ={})
        except ConfigError as exc:
            raise StateNotFoundError(f"unreadable state file: {exc}") from None

    def write(self, directory: Path | None = None) -> Path:
        """Write the file, readable by its owner only: it holds the Redis passwords."""
        directory = directory or state_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)  # one made before passwords were kept here
        path = directory / STATE_FILE
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps(asdict(self), indent=2).encode())
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_state(
    directory: Path | None = None,
    *,
    hint: str = "start `marketfeed up`, or give --bootstrap / --redis-url",
) -> UpState:
    """The state of the running ``marketfeed up``, or StateNotFoundError saying what to do."""
    path = (directory or state_dir()) / STATE_FILE
    try:
        raw = json.loads(path.read_text())
        state = UpState(**raw)
    except FileNotFoundError:
        raise StateNotFoundError(f"no running `marketfeed up` found ({path}); {hint}") from None
    except (ValueError, TypeError) as exc:
        raise StateNotFoundError(f"unreadable state file {path} ({exc}); {hint}") from None
    if not _alive(state.pid):
        raise StateNotFoundError(
            f"the `marketfeed up` recorded in {path} (pid {state.pid}) is not running; {hint}"
        )
    return state


def remove_state(directory: Path | None = None, *, pid: int | None = None) -> None:
    """Remove the state file; with ``pid``, only if it is that process's (a second ``up`` in
    the same state directory may have written its own since, which must stay)."""
    path = (directory or state_dir()) / STATE_FILE
    if pid is not None:
        try:
            recorded = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            recorded = None  # gone, or not ours to judge: an unreadable file is left alone
        if recorded != pid:
            return
    path.unlink(missing_ok=True)
