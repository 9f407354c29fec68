"""The roles a consumer-benchmark worker process can play: the feed and each consumer."""
