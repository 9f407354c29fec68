"""Topic generations: bounded history of the market-data topics on a broker that keeps everything.

Kafka bounds a log by rolling segments and deleting old ones; the embedded broker (Tansu,
memory engine) enforces no retention and cannot delete records, so the publisher does the same
one level up: ``md.quotes`` and ``md.trades`` are written as ``md.quotes.g1``, ``md.quotes.g2``
..., each partition of a generation ended by an in-band ``rollover`` marker
(``common.schema.rollover``) naming the next, and old generations are deleted whole.

- ``naming``: topic names, the generations a broker holds, the history mode (no I/O);
- ``position``: where a reader stands, (generation, offset), and offset lag across generations
  (no I/O);
- ``follower``: one Kafka consumer reading partitions across generations, switching each at its
  marker (the I/O shell every market-data reader uses).
"""
