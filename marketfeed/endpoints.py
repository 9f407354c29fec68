"""Where ``up``'s children listen: the URL each prints once it does, read from its log.

Each child picks a free port itself (``--metrics-port 0``, the API's ``--port 0``) and prints one
line saying which: ``marketfeed metrics: URL (SERVICE)`` or ``marketfeed api: URL (docs at
/docs)``. Binding the port in the child rather than picking it in ``up`` leaves no window in
which another process could take it. Only what a child wrote after it was started is read, so a
log kept from an earlier run (``--log-dir``) is never taken for this one's.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import RuntimeStartError
from common.exposition import find_metrics_url
from common.runtime import ChildProcess

_API_LINE = re.compile(r"^marketfeed api: (http://\S+/) ", re.MULTILINE)
_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class Listener:
    """A child that will print where it listens: the API, or any child's /metrics."""

    name: str
    child: ChildProcess
    log_path: Path
    offset: int  # the log's size when the child started
    api: bool = False

    @classmethod
    def before_start(cls, name: str, child: ChildProcess, log_path: Path, *, api: bool) -> Listener:
        offset = log_path.stat().st_size if log_path.exists() else 0
        return cls(name, child, log_path, offset, api)

    def url(self) -> str | None:
        """The URL it printed, if it has yet."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        if self.api:
            found = _API_LINE.findall(text)
            return found[-1] if found else None
        return find_metrics_url(text)


async def printed_urls(listeners: list[Listener], *, timeout: float) -> dict[str, str]:
    """name -> URL of each listener, once all have printed theirs.

    RuntimeStartError if one exits first, or if some have said nothing within ``timeout``.
    """
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        for listener in listeners:
            if listener.name in urls:
                continue
            url = listener.url()
            if url is not None:
                urls[listener.name] = url
            elif listener.child.returncode is not None:
                raise RuntimeStartError(
                    f"{listener.name} exited with code {listener.child.returncode} during "
                    f"start-up (see {listener.log_path})"
                )
        if len(urls) == len(listeners):
            return urls
        if time.monotonic() > deadline:
            silent = ", ".join(sorted({lis.name for lis in listeners} - set(urls)))
            raise RuntimeStartError(
                f"{silent}: did not say where it listens within {timeout:.0f}s (see its log)"
            )
        await asyncio.sleep(_POLL_S)
