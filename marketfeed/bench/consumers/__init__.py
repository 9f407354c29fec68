"""``marketfeed bench consumers``: the caching consumer beside a naive one and a bare loop."""
