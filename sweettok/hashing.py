"""The content hash of a set of files (bundles, codebooks): a leaf module every format can import."""

from __future__ import annotations

import hashlib


def content_hash(files: dict[str, bytes]) -> str:
    """sha256 over (name, bytes) pairs in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()
