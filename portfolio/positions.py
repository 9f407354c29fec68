"""Positions per account and symbol: the arithmetic of a fill, and where positions are kept.

Kept in portfolio's own Redis rather than a faust Table: a Table's changelog lives on the
broker, and the embedded broker (memory engine) loses it on restart, while Redis is the
service's durable store already; it also lets ``marketfeed positions`` read positions without
joining anything. Layout (``P`` is the Redis prefix):

- ``P positions``: hash; field = msgpack ``[account, symbol]``, value = msgpack
  ``[qty, avg_price, realised, updated_ns]``;
- ``P fills``: set of the order ids already applied, written in the same MULTI/EXEC as the
  position, so a fill delivered again (at-least-once) is never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgpack
import redis.asyncio as aioredis

from common.schema import OrderFilled


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    account: str
    symbol: str
    qty: int = 0  # signed: > 0 long, < 0 short
    avg_price: float = 0.0  # of the open quantity; 0 when flat
    realised: float = 0.0
    updated_ns: int = 0

    def unrealised(self, mark: float) -> float:
        return self.qty * (mark - self.avg_price)


def apply_fill(pos: Position, fill: OrderFilled) -> Position:
    """The position after ``fill``: average cost on increase, realised P&L on decrease."""
    signed = fill.qty if fill.side == "B" else -fill.qty
    qty, avg, realised = pos.qty, pos.avg_price, pos.realised
    if qty == 0 or (qty > 0) == (signed > 0):
        new_qty = qty + signed
        avg = (abs(qty) * avg + abs(signed) * fill.price) / abs(new_qty)
    else:
        closed = min(abs(signed), abs(qty))
        direction = 1 if qty > 0 else -1
        realised += closed * (fill.price - avg) * direction
        new_qty = qty + signed
        if new_qty == 0:
            avg = 0.0
        elif (new_qty > 0) != (qty > 0):
            avg = fill.price  # flipped: the remainder was opened at this fill's price
    return Position(
        account=pos.account,
        symbol=pos.symbol,
        qty=new_qty,
        avg_price=avg,
        realised=realised,
        updated_ns=fill.ts_ns,
    )


def _field(account: str, symbol: str) -> bytes:
    out: bytes = msgpack.packb([account, symbol])
    return out


class PositionStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self.client = client
        self.positions_key = f"{prefix}positions"
        self.fills_key = f"{prefix}fills"

    async def get(self, account: str, symbol: str) -> Position:
        raw = await self.client.hget(self.positions_key, _field(account, symbol))
        return _position(account, symbol, raw)

    async def apply(self, fill: OrderFilled) -> Position | None:
        """Apply ``fill`` once; None if it was applied before (a re-delivery)."""
        if await self.client.sismember(self.fills_key, fill.order_id):
            return None
        # One agent per symbol's partition is the only writer of this position, so a read
        # followed by one MULTI/EXEC cannot lose an update.
        after = apply_fill(await self.get(fill.account, fill.symbol), fill)
        value = msgpack.packb([after.qty, after.avg_price, after.realised, after.updated_ns])
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.positions_key, _field(fill.account, fill.symbol), value)
        pipe.sadd(self.fills_key, fill.order_id)
        await pipe.execute()
        return after

    async def all(self, accounts: Iterable[str] = ()) -> list[Position]:
        wanted = set(accounts)
        raw = await self.client.hgetall(self.positions_key)
        out = []
        for key, value in raw.items():
            account, symbol = msgpack.unpackb(_raw(key), raw=False)
            if not wanted or account in wanted:
                out.append(_position(account, symbol, value))
        return sorted(out, key=lambda p: (p.account, p.symbol))


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _position(account: str, symbol: str, raw: bytes | str | None) -> Position:
    if raw is None:
        return Position(account=account, symbol=symbol)
    qty, avg, realised, updated_ns = msgpack.unpackb(_raw(raw), raw=False)
    return Position(
        account=account,
        symbol=symbol,
        qty=qty,
        avg_price=avg,
        realised=realised,
        updated_ns=updated_ns,
    )
