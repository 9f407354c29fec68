"""``marketfeed bench access``: a quote from a cache, by request/response over Kafka, over HTTP."""
