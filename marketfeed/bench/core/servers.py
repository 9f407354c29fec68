"""What every benchmark needs: a broker (embedded unless given), a fresh topic namespace, output."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from common.runtime import EmbeddedStack


@contextlib.asynccontextmanager
async def bench_broker(
    bootstrap: str | None, *, services: tuple[str, ...] = (), log_dir: Path | None = None
) -> AsyncIterator[tuple[str, EmbeddedStack | None]]:
    """Yield a bootstrap address: the given one, or an embedded broker started for the run."""
    if bootstrap:
        yield bootstrap, None
        return
    async with EmbeddedStack(services=services, log_dir=log_dir) as stack:
        yield stack.bootstrap, stack


def run_prefix(name: str) -> str:
    """A topic prefix of its own for each run, so runs on a shared broker never mix."""
    return f"bench.{name}.{uuid.uuid4().hex[:8]}."


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (readable in a terminal too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])
