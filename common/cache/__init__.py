"""The quote cache every consuming service keeps: a caching consumer and a reader of its Redis."""

from common.cache.consumer import CachingConsumer
from common.cache.keys import CacheKeys
from common.cache.settings import CacheSettings

__all__ = ["CacheKeys", "CacheSettings", "CachingConsumer"]
