"""``{"uri": "s3://..."}`` inputs: only objects under the configured prefixes, and nothing learned about others.

URI input is off unless the serve config lists ``allowed_uri_prefixes`` (``s3://bucket`` or
``s3://bucket/folder``, matched at ``/`` boundaries). A URI outside them, a missing object, a "folder", and
an object the server's credentials may not read all get the same answer (404, same message), and the
size limit's message does not state the object's size, so callers cannot probe what exists.
"""

from __future__ import annotations

import logging
import re

from sweettok_platform.serve.limits import RequestError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
MAX_URI_CHARS = 1100
log = logging.getLogger(__name__)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); 400 for anything else (other schemes, no bucket, no key, ``..``)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise RequestError(400, f"only s3:// URIs can be encoded by the endpoint, got {str(uri)[:200]!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    malformed = (
        len(uri) > MAX_URI_CHARS or not _BUCKET.fullmatch(bucket) or not key
        or any(part in ("", ".", "..") for part in key.split("/"))
        or any(ord(c) < 32 or c in "\\\x7f" for c in key)
    )
    if malformed:
        raise RequestError(400, f"malformed S3 URI {uri[:200]!r}: expected s3://bucket/key with a valid bucket "
                                "name and a key without empty, '.' or '..' parts")
    return bucket, key


def normalise_prefix(prefix: str) -> str:
    """A configured prefix as ``s3://bucket/`` or ``s3://bucket/folder/``; ValueError if it is not one."""
    if not isinstance(prefix, str) or not prefix.startswith("s3://"):
        raise ValueError(f"allowed_uri_prefixes: expected s3://bucket or s3://bucket/folder, got {prefix!r}")
    bucket, _, rest = prefix[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket) or any(p in (".", "..") for p in rest.split("/")):
        raise ValueError(f"allowed_uri_prefixes: {prefix!r} does not name a bucket (or a folder in one)")
    return f"s3://{bucket}/" + (rest.strip("/") + "/" if rest.strip("/") else "")


def _hidden(uri: str) -> RequestError:
    return RequestError(404, f"no such object, or not allowed: {uri[:200]}")


def fetch_uri(uri: str, max_bytes: int, allowed: list[str]) -> bytes:
    """The bytes of an allowed ``s3://`` object: 403 when URI input is off, 400 if malformed, 404 for
    missing / not allowed / not a file / unreadable alike, 413 past ``max_bytes``, 502 if storage fails."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    from sweettok import storage

    if not allowed:
        raise RequestError(403, "URI input is off on this endpoint (its serve config has no allowed_uri_prefixes); "
                                "upload the file instead")
    parse_s3_uri(uri)
    if not any(uri.startswith(normalise_prefix(p)) for p in allowed):
        raise _hidden(uri)
    try:
        fs, path = storage.resolve(uri)
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise _hidden(uri)
        if info.size is not None and info.size > max_bytes:
            raise RequestError(413, f"the object is larger than the limit of {max_bytes} bytes")
        with fs.open_input_stream(path) as f:
            data = f.read(max_bytes + 1)  # the object may have grown since
        if len(data) > max_bytes:
            raise RequestError(413, f"the object is larger than the limit of {max_bytes} bytes")
        return data
    except (FileNotFoundError, pa.ArrowInvalid):
        raise _hidden(uri) from None
    except OSError as e:
        text = str(e)
        if any(s in text for s in ("NoSuchBucket", "NoSuchKey", "does not exist", "AccessDenied", "ACCESS_DENIED",
                                   "Forbidden", "403")):
            raise _hidden(uri) from None
        log.warning("storage error reading %s: %s", uri, text.splitlines()[0][:300] if text else repr(e))
        raise RequestError(502, "storage error reading the object; try again later") from None
