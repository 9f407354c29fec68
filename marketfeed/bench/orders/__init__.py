"""``marketfeed bench orders``: order_entry's throughput, latency and join, beside an echo."""
