"""``marketfeed bench``: benchmarks that print figures, each beside a baseline from the same run."""
