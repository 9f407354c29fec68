"""Turns a batch of simulated ticks into Kafka records: (partition, key, msgpack value).

This is the publisher's hot loop, kept in one place: numpy arrays become Python scalars once per
batch (``tolist``), and each record is one dict and one ``packb`` through the shared schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.schema import pack, quote_wire, trade_wire
from feed_publisher.market import QuoteBatch, TradeBatch


@dataclass(frozen=True, slots=True)
class Records:
    """Records of one topic grouped by partition, in tick order within each partition."""

    by_partition: dict[int, list[tuple[bytes, bytes]]]
    count: int


class FrameEncoder:
    def __init__(
        self, names: Sequence[str], partition_of: npt.NDArray[np.int64], epoch: int
    ) -> None:
        self.names = list(names)
        self.keys = [n.encode("ascii") for n in self.names]
        self.partition_of = partition_of
        self.epoch = epoch

    def quotes(self, q: QuoteBatch, ts_ns: int) -> Records:
        out: dict[int, list[tuple[bytes, bytes]]] = {}
        names, keys, epoch = self.names, self.keys, self.epoch
        parts = self.partition_of[q.symbol].tolist()
        rows = zip(
            q.symbol.tolist(),
            q.seq.tolist(),
            q.bid.tolist(),
            q.ask.tolist(),
            q.bid_size.tolist(),
            q.ask_size.tolist(),
            parts,
            strict=True,
        )
        for sym, seq, bid, ask, bsz, asz, part in rows:
            value = pack(quote_wire(names[sym], epoch, seq, ts_ns, bid, ask, bsz, asz))
            out.setdefault(part, []).append((keys[sym], value))
        return Records(out, len(parts))

    def trades(self, t: TradeBatch, ts_ns: int) -> Records:
        out: dict[int, list[tuple[bytes, bytes]]] = {}
        names, keys, epoch = self.names, self.keys, self.epoch
        parts = self.partition_of[t.symbol].tolist()
        rows = zip(
            t.symbol.tolist(),
            t.seq.tolist(),
            t.price.tolist(),
            t.size.tolist(),
            t.buy.tolist(),
            parts,
            strict=True,
        )
        for sym, seq, price, size, buy, part in rows:
            value = pack(
                trade_wire(names[sym], epoch, seq, ts_ns, price, size, "B" if buy else "S")
            )
            out.setdefault(part, []).append((keys[sym], value))
        return Records(out, len(parts))
