"""One filesystem layer for local paths and ``s3://`` URIs (pyarrow.fs).

S3 is configured as AWS tools do: credentials from the standard environment/credential chain, the region
from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, a custom endpoint (MinIO, moto, ...) from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, and the SDK's retries of failed requests (with backoff)
from ``AWS_MAX_ATTEMPTS`` (default ``DEFAULT_MAX_ATTEMPTS``).

``is_transient`` tells storage faults that a later attempt may not see (connection refused or reset,
timeouts, throttling, 5xx) from permanent, file-specific ones (missing, access denied, corrupt).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import pyarrow.fs as pafs


DEFAULT_MAX_ATTEMPTS = 6  # per S3 request, the SDK's standard backoff in between (AWS_MAX_ATTEMPTS overrides)
# what pyarrow / the AWS SDK / curl say about faults of the service or the network, not of one object
TRANSIENT = re.compile(
    r"NETWORK_CONNECTION|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|THROTTLING|SLOW_DOWN|REQUEST_TIMEOUT|"
    r"REQUEST_TIME_TOO_SKEWED|curlCode|Couldn't connect|Connection refused|Connection reset|connection was reset|"
    r"timed out|Timeout was reached|Empty reply|Broken pipe|HTTP response code 5\d\d|status code 5\d\d|"
    r"SlowDown|ServiceUnavailable|InternalError|RequestTimeout|StorageUnavailableError",
    re.IGNORECASE,
)


class StorageUnavailableError(OSError):
    """Storage (S3 or a mount) kept failing after every retry: a fault of the service, not of a file."""


def is_transient(error: BaseException | str) -> bool:
    """True for a storage fault that a later attempt may not see; False for missing/denied/corrupt files."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return bool(TRANSIENT.search(str(error)))


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


# every variable this module reads: what a Ray job forwards to its workers and actors (``storage_env``)
ENV_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_MAX_ATTEMPTS")


def storage_env() -> dict[str, str]:
    """This process's storage settings, to hand to the processes of a job (they may not inherit them)."""
    return {k: os.environ[k] for k in ENV_VARS if k in os.environ}


def s3_filesystem(pin_keys: bool = False) -> pafs.S3FileSystem:
    """An S3 filesystem configured from the environment.

    ``pin_keys`` copies the environment's access keys into the filesystem, so a pickled copy works in
    processes whose environment lacks them (without keys in the environment it changes nothing).
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=max(1, attempts))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if pin_keys and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                      session_token=os.environ.get("AWS_SESSION_TOKEN"))
    return pafs.S3FileSystem(**kwargs)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """URI -> (filesystem, path inside it)."""
    if uri.startswith("s3://"):
        return s3_filesystem(), uri[len("s3://") :].rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if is_remote(uri):
        raise ValueError(f"unsupported URI scheme in {uri!r}; use a local path or s3://")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts]) if is_remote(uri) else os.path.join(uri, *parts)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no such file: {uri}") from e
    except OSError as e:
        if "NoSuchKey" in str(e) or "does not exist" in str(e) or "Path does not exist" in str(e):
            raise FileNotFoundError(f"no such file: {uri}") from e
        if is_transient(e):  # named up front, so callers that keep only a message's start still see it
            raise StorageUnavailableError(f"{uri}: {e}") from e
        raise


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_files(uri: str, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Every file under ``uri`` (recursive), as URIs of the same kind, sorted; optionally only those whose
    name ends with one of ``suffixes`` (case-insensitive)."""
    fs, root = resolve(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such directory: {uri}")
    if info.type == pafs.FileType.File:
        raise NotADirectoryError(f"expected a directory, got a file: {uri}")
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    out = []
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if entry.type != pafs.FileType.File or (wanted and not entry.path.lower().endswith(wanted)):
            continue
        rel = entry.path[len(root) :].lstrip("/")
        out.append(join(uri, *rel.split("/")))
    return sorted(out)


def delete(uri: str) -> None:
    """Remove a file or a whole directory tree; nothing happens if it does not exist."""
    fs, path = resolve(uri)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def relative(uri: str, root: str) -> str:
    """``uri`` as a '/'-separated path relative to the directory ``root`` (both of the same kind)."""
    base = root.rstrip("/")
    if is_remote(uri) or is_remote(root):
        if not uri.startswith(base + "/"):
            raise ValueError(f"{uri} is not under {root}")
        return uri[len(base) + 1 :]
    return os.path.relpath(os.path.abspath(uri), os.path.abspath(root)).replace(os.sep, "/")
