"""Writing a file that only its owner can read: up.json, the feed key, private keys, the
secrets of compose.yaml.

The file is made anew (any file at the path is unlinked first, so no earlier mode or owner
carries over) with O_EXCL and mode 0600 from the start: there is no moment when another user
could open it, as there would be with a write followed by chmod.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes, *, owner: int | None = None) -> None:
    """Write ``data`` to a new 0600 file at ``path``; with ``owner``, the file is given to
    that user id (and the group of the same number) before anything is written into it."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        if owner is not None:
            os.fchown(out.fileno(), owner, owner)
        out.write(data)
