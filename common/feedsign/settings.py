"""Where a service's feed keys come from: the settings, the key file's mode check, the policy.

A key is given inline (``--feed-key`` / ``MARKETFEED_FEED_KEY``, a secret: passed to children
through the environment, never on a command line) or in a file (``--feed-key-file``, refused
when group or others may read it, like ssh's private keys). With neither, a service refuses to
start, with one line: a consumer without a key cannot tell a forged quote from a real one, and
an unsigned publisher would be refused by every consumer that has one. A lab or benchmark that
wants no signing says so with ``--insecure-unsigned-feed``, and it is logged.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from common.config import setting
from common.errors import ConfigError
from common.feedsign.signing import FeedKeys
from common.kafka import KafkaSettings
from common.privatefile import write_private

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FeedKeySettings:
    """Where the feed key(s) are, mixed into the config of every process that signs or checks
    the feed (the services through FeedSettings; the HTTP API, which checks the snapshots it
    fetches, directly)."""

    # No instance layout of its own: mixed in beside slotted settings classes.
    __slots__ = ()

    feed_key: str | None = setting(
        None,
        help="the deployment's feed key(s), hex, comma-separated: the first signs, every one "
        "verifies (key rotation); prefer the environment or --feed-key-file",
        secret=True,
        metavar="HEX[,HEX]",
    )
    feed_key_file: Path | None = setting(
        None,
        help="file holding the feed key(s), hex, one per line (must not be readable by group "
        "or others)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings(FeedKeySettings, KafkaSettings):
    """Kafka settings of a process that signs or verifies the market-data feed."""

    insecure_unsigned_feed: bool = setting(
        False,
        help="lab only: run without a feed key (the publisher signs nothing and consumers "
        "accept unsigned, even forged, market data)",
    )


def feed_keys(settings: FeedSettings) -> FeedKeys | None:
    """The keys ``settings`` name, or None with ``--insecure-unsigned-feed``.

    Raises ConfigError (one line, never quoting a key) for a missing, unreadable, too open or
    malformed key."""
    if settings.feed_key is not None:
        return FeedKeys.parse(settings.feed_key, source="--feed-key/MARKETFEED_FEED_KEY")
    if settings.feed_key_file is not None:
        return FeedKeys.parse(_read_private(settings.feed_key_file), source=_where(settings))
    if settings.insecure_unsigned_feed:
        log.warning("no feed key (--insecure-unsigned-feed): market data is not authenticated")
        return None
    raise ConfigError(
        "no feed key: give --feed-key-file or MARKETFEED_FEED_KEY (the deployment's key, "
        "`marketfeed up` makes one per run), or --insecure-unsigned-feed for a lab"
    )


def _where(settings: FeedSettings) -> str:
    return f"--feed-key-file={settings.feed_key_file}"


def _read_private(path: Path) -> str:
    source = f"--feed-key-file={path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{source}: not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{source}: readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                "chmod 600 it"
            )
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ConfigError(f"{source}: cannot read it: {reason}") from None


def write_key_file(path: Path, keys: FeedKeys) -> None:
    """Write ``keys`` where only this user can read them (created 0600, never widened)."""
    write_private(path, (keys.hex().replace(",", "\n") + "\n").encode("ascii"))
