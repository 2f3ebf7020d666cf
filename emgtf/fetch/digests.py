"""Digests of published files, computed incrementally as the bytes arrive.

Three kinds are published: ``sha256`` (Git LFS objects), ``md5`` (git-annex keys of the BIDS
release) and ``git-sha1``, git's blob id of a plain file in a git repository: the SHA-1 of
``b"blob <size>\\0"`` followed by the file's bytes, so its size must be known before the first byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from emgtf.errors import EmgtfError

KINDS = ("sha256", "md5", "git-sha1")
_BLOCK = 1 << 20


class Hasher:
    """``update`` with the file's bytes in order, then ``hexdigest``."""

    def __init__(self, kind: str, size: int | None = None):
        if kind not in KINDS:
            raise EmgtfError(f"unknown digest kind '{kind}' (known: {', '.join(KINDS)})")
        self.kind = kind
        if kind == "git-sha1":
            if size is None:
                raise EmgtfError("a git blob id needs the file's size before its bytes")
            self._hash = hashlib.sha1(b"blob %d\0" % size)
        else:
            self._hash = hashlib.new(kind)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def update_from_file(self, path: Path, length: int | None = None) -> None:
        """Hashes the first ``length`` bytes of ``path`` (all of it when None)."""
        left = length
        with open(path, "rb") as f:
            while left is None or left > 0:
                block = f.read(_BLOCK if left is None else min(_BLOCK, left))
                if not block:
                    break
                self._hash.update(block)
                if left is not None:
                    left -= len(block)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_digest(path, kind: str) -> str:
    """The digest of a whole file."""
    path = Path(path)
    hasher = Hasher(kind, path.stat().st_size if kind == "git-sha1" else None)
    hasher.update_from_file(path)
    return hasher.hexdigest()


def git_blob_id(data: bytes) -> str:
    """git's blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
