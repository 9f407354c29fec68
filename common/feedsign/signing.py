"""The signed feed: an HMAC-SHA256 per market-data record, in two Kafka record headers.

Pure logic, no I/O. What is signed is one byte string, defined here and in the README so that
a client in another language can verify it::

    b"marketfeed.sig.v1\\n"
    u16 big-endian length of CONTEXT, CONTEXT    the topic name without its generation suffix
                                                 (``md.quotes`` for ``md.quotes.g7``, with the
                                                 deployment's prefix; a reply topic as it is)
    u32 big-endian length of KEY, KEY            the record key; 0xFFFFFFFF and nothing for none
    VALUE                                        the record value, to the end

The digest goes in header ``mf.sig`` (32 bytes), and the id of the key that made it in
``mf.kid`` (8 ASCII hex characters: the start of SHA-256 of ``b"marketfeed.kid\\n" + key``;
the id says which key, never what it is). A verifier holds every key of a rotation, so a
record signed with the old key or the new one is accepted while both are configured.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from common.errors import ConfigError

SIG_HEADER = "mf.sig"
KID_HEADER = "mf.kid"
_DOMAIN = b"marketfeed.sig.v1\n"
_NO_KEY = struct.pack(">I", 0xFFFFFFFF)
# Shorter keys are refused: HMAC-SHA256 is as strong as its key up to 32 bytes.
MIN_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size

Headers = list[tuple[str, bytes]]


def key_id(key: bytes) -> bytes:
    """The public id of ``key``: names it in a record header, reveals nothing of it."""
    return hashlib.sha256(b"marketfeed.kid\n" + key).hexdigest()[:8].encode("ascii")


def context_prefix(context: str) -> bytes:
    """The start of every signed byte string of ``context`` (computed once per topic)."""
    raw = context.encode("utf-8")
    return _DOMAIN + struct.pack(">H", len(raw)) + raw


class _Hmac:
    """HMAC-SHA256 with one key, its padded key states computed once (RFC 2104).

    ``hmac.digest`` derives them again on every call: 4x the cost of this, measured here on
    150-byte messages, and the publisher signs every record."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def signed_bytes(prefix: bytes, key: bytes | None, value: bytes) -> bytes:
    """The byte string the HMAC covers (``prefix`` from :func:`context_prefix`)."""
    if key is None:
        return b"".join((prefix, _NO_KEY, value))
    return b"".join((prefix, struct.pack(">I", len(key)), key, value))


@dataclass(frozen=True, slots=True)
class FeedKeys:
    """The keys of a deployment: the first signs, every one verifies (rotation)."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("a feed key list must hold at least one key")
        for key in self.keys:
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(
                    f"a feed key must be at least {MIN_KEY_BYTES} bytes "
                    f"({2 * MIN_KEY_BYTES} hex digits)"
                )

    @classmethod
    def parse(cls, text: str, *, source: str) -> FeedKeys:
        """Hex keys separated by commas or newlines (the first signs); ``#`` starts a comment.

        A bad value is a ConfigError naming ``source`` and never quoting the key."""
        keys = []
        for line in text.replace(",", "\n").splitlines():
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            try:
                keys.append(bytes.fromhex(item))
            except ValueError:
                raise ConfigError(f"{source}: a feed key must be hex digits") from None
        if not keys:
            raise ConfigError(f"{source}: no feed key in it")
        try:
            return cls(tuple(keys))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def hex(self) -> str:
        """As :meth:`parse` reads them back (how a child is handed its keys)."""
        return ",".join(k.hex() for k in self.keys)

    def signer(self) -> Signer:
        return Signer(self.keys[0])

    def verifier(self) -> Verifier:
        return Verifier(self.keys)


class Signer:
    """Signs the records of a topic; one HMAC per record."""

    def __init__(self, key: bytes) -> None:
        self._hmac = _Hmac(key)
        self.kid = key_id(key)
        self._prefixes: dict[str, bytes] = {}

    def headers(self, context: str, key: bytes | None, value: bytes) -> Headers:
        prefix = self._prefixes.get(context)
        if prefix is None:
            prefix = self._prefixes[context] = context_prefix(context)
        digest = self._hmac.digest(signed_bytes(prefix, key, value))
        return [(SIG_HEADER, digest), (KID_HEADER, self.kid)]


class Verifier:
    """Checks the signature of a record; :meth:`reason` says why it is not authentic."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys = {key_id(k): _Hmac(k) for k in keys}
        self._prefixes: dict[str, bytes] = {}

    def reason(
        self,
        context: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
    ) -> str | None:
        """None for a record signed by one of our keys, else why not (one line)."""
        sig = kid = None
        for name, data in headers or ():
            if name == SIG_HEADER:
                sig = data
            elif name == KID_HEADER:
                kid = data
        if sig is None:
            return "unsigned: no mf.sig header"
        secret = self._keys.get(kid or b"")
        if secret is None:
            shown = (kid or b"")[:16].decode("ascii", "replace")
            return f"signed with an unknown key (mf.kid {shown!r})"
        prefix = self._prefixes.get(context)
        if prefix is None:
            prefix = self._prefixes[context] = context_prefix(context)
        expected = secret.digest(signed_bytes(prefix, key, value or b""))
        if not hmac.compare_digest(expected, sig):
            return f"bad signature (mf.kid {kid.decode('ascii', 'replace') if kid else ''!r})"
        return None
