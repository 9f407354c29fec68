"""``marketfeed positions``: each position of portfolio, marked to the mid of its cached quote.

Reads portfolio's Redis only (positions and the quote cache); marks never come from a call to
the publisher. A mark older than ``--stale-after`` is flagged STALE, a missing one is shown as
such and its unrealised P&L left out rather than guessed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from common.cache.reader import QuoteReader
from common.cli import EXIT_OK
from common.config import add_arguments, build, positive, setting
from marketfeed.targets import TargetSettings
from portfolio.marked import MarkedPosition, marked_positions


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionsSettings(TargetSettings):
    service: str = setting("portfolio", help="whose positions to read (portfolio)")
    account: tuple[str, ...] = setting((), help="only these accounts, comma-separated")
    json: bool = setting(False, help="print JSON instead of a table")
    stale_after: float = setting(
        5.0, help="seconds after which a mark is flagged STALE", check=positive
    )


# The rows are portfolio's own reading of its positions (the HTTP API gives the same).
Row = MarkedPosition


async def lookup(settings: PositionsSettings) -> list[MarkedPosition]:
    target = settings.resolve()
    async with QuoteReader.from_url(
        target.redis_url, prefix=target.redis_prefix, stale_after=settings.stale_after
    ) as reader:
        return await marked_positions(reader, prefix=target.redis_prefix, accounts=settings.account)


def render(rows: list[MarkedPosition]) -> str:
    lines = [
        f"{'ACCOUNT':<12} {'SYMBOL':<8} {'QTY':>9} {'AVG PX':>10} {'MARK':>10} {'AGE':>8} "
        f"{'UNREALISED':>12} {'REALISED':>12}  NOTE"
    ]
    for r in rows:
        p = r.position
        mark = "-" if r.mark is None else f"{r.mark:.4f}"
        age = "-" if r.mark_age_s is None else f"{r.mark_age_s:.1f}s"
        unreal = "-" if r.unrealised is None else f"{r.unrealised:.2f}"
        note = "STALE" if r.stale else ("no mark" if r.mark is None else "")
        lines.append(
            f"{p.account:<12} {p.symbol:<8} {p.qty:>9} {p.avg_price:>10.4f} {mark:>10} {age:>8} "
            f"{unreal:>12} {p.realised:>12.2f}  {note}".rstrip()
        )
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, PositionsSettings)


async def run(args: argparse.Namespace) -> int:
    settings = build(PositionsSettings, args)
    rows = await lookup(settings)
    if settings.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(render(rows))
    return EXIT_OK
