"""Shared by every marketfeed service: the wire format, topics, partitioner, config, runtime."""
