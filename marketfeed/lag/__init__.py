"""``marketfeed lag``: how far behind the feed each service's quote cache is.

``command`` is the command (flags, one-shot and ``--watch``), ``monitor`` takes the samples
(the only I/O), ``sample`` and ``rules`` are what a sample holds and how it is judged (no I/O),
``verdict`` the states and how a stall is told, ``render`` prints the verdicts. Nothing is
imported here, so that ``marketfeed`` loads only the module of the command it runs.
"""
