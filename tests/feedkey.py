"""The feed key of the test suite: every publisher and cache a test starts signs and verifies
with it (``common.feedsign``), as a deployment's would."""

from __future__ import annotations

from common.feedsign import FeedKeys

FEED_KEY = "5eed" * 16  # hex, 32 bytes
FEED_KEYS = FeedKeys.parse(FEED_KEY, source="tests")


def signed(topic_base: str, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
    """The headers the publisher would put on a record of ``topic_base`` (a hand-made quote)."""
    return FEED_KEYS.signer().headers(topic_base, key, value)
