"""Which tokenize failures are a file's and which are the storage's.

A file that is missing, unreadable, corrupt, truncated, too short or hangs the decoder is recorded in the
corpus's errors table and the job goes on. A storage fault (S3 outage, throttling, a reset connection) is
not the file's: the read is retried with backoff after the SDK's own retries (``AWS_MAX_ATTEMPTS``); if the
fault outlasts that, the decode task fails with ``StorageUnavailableError`` and Ray retries the task; if that
fails too, the job stops with a message naming storage, and a rerun resumes. ``--retry-errors`` redoes the
shards whose recorded errors were storage faults (written by older versions, which did not tell them apart).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from sweettok import storage
from sweettok.storage import StorageUnavailableError, is_transient


@dataclass(kw_only=True)
class StorageRetry:
    """Retries of a file whose read failed on a storage fault: ``attempts`` more, backoff doubling."""

    attempts: int = 4
    backoff_s: float = 1.0  # first pause; then 2x, 4x, ... (about 15 s in all with the defaults)


def is_storage_fault(item_uri: str, error: str | None) -> bool:
    """A failure of the storage service (not of the file): only for remote inputs, by the SDK's message."""
    return error is not None and storage.is_remote(item_uri) and is_transient(error)


def decode_with_retries(decode: Callable[[Any], Any], item: Any, retry: StorageRetry) -> Any:
    """``decode(item)``, retried while it fails on a storage fault; raises once the retries are spent."""
    result = decode(item)
    pause = retry.backoff_s
    for _ in range(retry.attempts):
        if not is_storage_fault(item.uri, result.error):
            return result
        time.sleep(pause)
        pause *= 2
        result = decode(item)
    if is_storage_fault(item.uri, result.error):
        raise StorageUnavailableError(f"storage unavailable while reading {item.uri} "
                                      f"(after {retry.attempts + 1} attempts): {result.error}")
    return result


def error_reason(item: Any, error: str | None) -> str:
    """The reason recorded for a failed file, keeping a permission cause that the decoder's message hides."""
    reason = error or "no clips"
    if not storage.is_remote(item.uri) and os.path.exists(item.uri) and not os.access(item.uri, os.R_OK):
        return f"permission denied: cannot read {item.uri} ({reason})"
    if "ACCESS_DENIED" in reason or "AccessDenied" in reason:
        return f"permission denied: {reason}"
    return reason


def storage_failure(error: BaseException) -> StorageUnavailableError | None:
    """The ``StorageUnavailableError`` behind a failed Ray Data job, if storage was the cause."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, StorageUnavailableError):
            return e
        if "StorageUnavailableError" in str(e):
            text = str(e).strip().splitlines()
            line = next((x for x in reversed(text) if "StorageUnavailableError" in x), text[-1])
            return StorageUnavailableError(line.split("StorageUnavailableError:", 1)[-1].strip())
        stack.extend([e.__cause__, e.__context__, getattr(e, "cause", None)])
    return None
