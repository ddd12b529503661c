"""``tokenize --overwrite``: delete a corpus this tool wrote, and nothing else.

Rules (local paths and ``s3://`` alike):
- the output must not be the input root, an input file, or a directory above any of them;
- an output that exists and holds files must be a corpus (``corpus.json`` or ``plan.json`` at its top);
- only the corpus's own files go: ``corpus.json``, ``plan.json`` and ``part-NNNNN.parquet`` files (and their
  hidden temporaries) under ``data/`` and ``errors/``, and ``part-NNNNN-NNNNN.parquet`` staged parts under
  ``staging/``. Anything else there stays where it is.
Anything else is refused with ``UnsafeOverwriteError`` before a byte is deleted.
"""

from __future__ import annotations

import os
import re

import pyarrow.fs as pafs

from sweettok import storage
from sweettok_platform.core.corpus import CARD, DATA_DIR, ERRORS_DIR, PLAN, STAGING_DIR

OWN_FILE = re.compile(r"\.?part-\d{5,}\.parquet(\.[0-9a-f]+\.tmp)?")
OWN_STAGED = re.compile(r"\.?part-\d{5,}-\d{5,}\.parquet(\.[0-9a-f]+\.tmp)?")


class UnsafeOverwriteError(ValueError):
    """``--overwrite`` was asked to delete something that is not a corpus this tool wrote."""


def _normal(uri: str) -> str:
    """A comparable form: ``s3://bucket/key`` without trailing slashes, or a resolved absolute local path."""
    if storage.is_remote(uri):
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://" + "/".join(p for p in rest.split("/") if p)
    return os.path.realpath(uri.removeprefix("file://"))


def _contains(outer: str, inner: str) -> bool:
    """``inner`` is ``outer`` or lies below it."""
    if outer == inner:
        return True
    sep = "/" if storage.is_remote(outer) else os.sep
    return inner.startswith(outer.rstrip(sep) + sep)


def check_not_input(output: str, inputs: list[str]) -> None:
    """Refuse an output that is an input, or holds one (the input root, its ancestors, a listed file)."""
    out = _normal(output)
    if storage.is_remote(out) and out.count("/") < 3:
        raise UnsafeOverwriteError(f"refusing to overwrite {output}: a whole bucket is never a corpus; "
                                   "give a prefix inside it (s3://bucket/corpus)")
    for uri in inputs:
        if uri and storage.is_remote(uri) == storage.is_remote(out) and _contains(out, _normal(uri)):
            raise UnsafeOverwriteError(f"refusing to overwrite {output}: it holds this job's input ({uri}); "
                                       "write the corpus somewhere else")


def own_files(output: str) -> list[str]:
    """The files under ``output`` that a tokenize run wrote, as URIs; raises if ``output`` is not a corpus."""
    fs, root = storage.resolve(output)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        raise UnsafeOverwriteError(f"refusing to overwrite {output}: it is a file, not a corpus directory")
    entries = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = [e for e in entries if e.type == pafs.FileType.File]
    if not files:
        return []
    rel = {e.path[len(root):].lstrip("/") for e in files}
    if CARD not in rel and PLAN not in rel:
        raise UnsafeOverwriteError(
            f"refusing to overwrite {output}: it holds files but no {CARD} or {PLAN}, so it is not a corpus "
            "written by `sweettok tokenize`; choose an empty or new output, or delete it yourself")
    own = [name for name in rel if name in (CARD, PLAN) or _in_own_dir(name)]
    return sorted(storage.join(output, *name.split("/")) for name in own)


def _in_own_dir(name: str) -> bool:
    parts = name.split("/")
    if len(parts) != 2:
        return False
    if parts[0] == STAGING_DIR:
        return OWN_STAGED.fullmatch(parts[1]) is not None
    return parts[0] in (DATA_DIR, ERRORS_DIR) and OWN_FILE.fullmatch(parts[1]) is not None


def clear_corpus(output: str, inputs: list[str]) -> int:
    """Delete the corpus at ``output`` (its own files only) after the checks above; returns files deleted."""
    check_not_input(output, inputs)
    files = own_files(output)
    for uri in files:
        storage.delete(uri)
    if not storage.is_remote(output):
        for sub in (DATA_DIR, ERRORS_DIR, STAGING_DIR):  # empty directories left behind
            path = os.path.join(_normal(output), sub)
            if os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)
    return len(files)
