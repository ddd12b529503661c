"""Request limits of the endpoint, and the one error type every handler raises for a bad request.

Every refusal is a ``RequestError(status, reason)``; the app turns it into a JSON 4xx response. Limits are
checked as early as possible: the body size while it streams in, clip counts and frame sizes before
any frame is decoded, ids before they reach a batch.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(kw_only=True)
class LimitsConfig:
    """What one request may ask for."""

    max_body_bytes: int = 64 * 2**20  # 413 beyond
    max_json_bytes: int = 2**20  # JSON bodies (decode ids, S3 URIs): 413 beyond; parsed off the event loop
    # slow uploads: a body must arrive within body_timeout_s, plus 1 s per min_body_rate bytes received, and
    # never take longer than max_body_seconds; 408 otherwise
    body_timeout_s: float = 10.0
    min_body_rate: int = 16 * 1024  # bytes/s
    max_body_seconds: float = 600.0
    max_requests: int = 256  # encode/decode requests one ingress replica holds at once; 503 beyond
    max_video_frames: int = 20_000  # frames in an uploaded video (clip length of the source)
    max_frame_pixels: int = 4096 * 2160  # width x height of a source frame
    max_clips: int = 16  # clips one encode request may produce (policy "windows")
    max_decode_rows: int = 16  # clips of ids one decode request may carry
    decode_timeout_s: float = 20.0  # wall-clock limit for decoding one untrusted file
    decoder_memory_bytes: int = 4 * 2**30  # data segment of a decoding process (a 17-frame 4K clip fits)


class RequestError(Exception):
    """A request the endpoint refuses: HTTP ``status`` (4xx) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __reduce__(self):  # survives pickling across Ray (the decoding sandbox sends JSON, see sandbox.py)
        return (RequestError, (self.status, self.reason))


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int, *,
                    timeout_s: float = math.inf, min_rate: float = 0.0, max_s: float = math.inf) -> bytes:
    """Collect a request body, refusing (413) as soon as it is, or says it will be, larger than ``limit``,
    and (408) once it is slower than ``timeout_s`` plus 1 s per ``min_rate`` bytes received, or ``max_s``."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"bad Content-Length header {declared!r}") from None
        if size > limit:
            raise RequestError(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")
    loop = asyncio.get_running_loop()
    began = loop.time()
    parts, total = [], 0
    stream = chunks.__aiter__()
    while True:
        allowed = min(max_s, timeout_s + (total / min_rate if min_rate > 0 else math.inf))
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, began + allowed - loop.time()))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise RequestError(
                408, f"request body too slow: {total} bytes in {loop.time() - began:.1f} s; send it within "
                     f"{timeout_s:g} s plus 1 s per {min_rate:g} bytes (at most {max_s:g} s)") from None
        total += len(chunk)
        if total > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def check_frames(num_frames: int, height: int, width: int, limits: LimitsConfig) -> None:
    """Refuse (413) a source whose frame count or frame size is past the limits."""
    if num_frames > limits.max_video_frames:
        raise RequestError(413, f"video has {num_frames} frames; the limit is {limits.max_video_frames}")
    if height * width > limits.max_frame_pixels:
        raise RequestError(
            413, f"frames of {width}x{height} exceed the limit of {limits.max_frame_pixels} pixels per frame"
        )


def check_clips(count: int, limits: LimitsConfig) -> None:
    if count > limits.max_clips:
        raise RequestError(
            413, f"this request would make {count} clips; the limit is {limits.max_clips} (use a larger stride)"
        )


def check_ids(rows: list[list[int]], *, spatial: int, temporal: int, sizes: dict[str, int], max_rows: int) -> str:
    """Validate ids in the canonical layout; returns the kind ('image' or 'video'); 422 on any mismatch."""
    if not rows:
        raise RequestError(422, "no ids given")
    if len(rows) > max_rows:
        raise RequestError(413, f"{len(rows)} clips of ids in one request; the limit is {max_rows}")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise RequestError(422, f"all clips must have the same number of ids, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if n not in (spatial, spatial + temporal):
        raise RequestError(
            422, f"expected {spatial} (image) or {spatial + temporal} (video) ids per clip, got {n}"
        )
    for name, lo, hi in (("spatial", 0, spatial), ("temporal", spatial, n)):
        values = [v for r in rows for v in r[lo:hi]]
        if values and (min(values) < 0 or max(values) >= sizes[name]):
            raise RequestError(
                422, f"{name} ids out of range: got [{min(values)}, {max(values)}], codebook has {sizes[name]}"
            )
    return "image" if n == spatial else "video"
