"""The feed key of a read command (``quote``, the API) that fetches from the publisher.

A snapshot fetched from the publisher is used only if it is signed by the deployment's key
(``common.feedsign``). The key is ``MARKETFEED_FEED_KEY``, else ``MARKETFEED_FEED_KEY_FILE``,
else the key file of the running ``marketfeed up`` (in its run directory, mode 0600). With none,
the command does not fetch from the publisher: it could not tell a forged reply from a real one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from common.cache.settings import CacheSettings
from common.errors import StateNotFoundError
from common.feedsign import FeedTrust
from marketfeed.state import load_state


def reader_trust(
    environ: Mapping[str, str] | None = None,
    *,
    key: str | None = None,
    key_file: Path | None = None,
) -> FeedTrust | None:
    """What a read command accepts from the publisher, or None (it then does not fetch).

    ``key``/``key_file``: given as settings of the command (the API's), they win.
    Raises ConfigError (one line) for a key that is given but bad (malformed, too open)."""
    environ = os.environ if environ is None else environ
    # The environment is read only for these two: a child of `up` inherits other settings'
    # variables ("none" for an unset secret) that are not this command's to parse.
    key = key if key is not None else _given(environ, "MARKETFEED_FEED_KEY")
    if key_file is None and (path := _given(environ, "MARKETFEED_FEED_KEY_FILE")):
        key_file = Path(path).expanduser()
    if key is not None or key_file is not None:
        return CacheSettings(feed_key=key, feed_key_file=key_file).trust()
    try:
        up_key_file = load_state().feed_key_file
    except StateNotFoundError:
        return None
    if not up_key_file or not Path(up_key_file).exists():
        return None
    return CacheSettings(feed_key_file=Path(up_key_file)).trust()


def _given(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return None if value.lower() in ("", "none") else value
