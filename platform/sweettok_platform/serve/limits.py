"""Request limits of the endpoint, and the one error type every handler raises for a bad request.

Every refusal is a ``RequestError(status, reason)``; the app turns it into a JSON 4xx response. Limits are
checked as early as possible: the body size while it streams in, clip counts and frame sizes before
any frame is decoded, ids before they reach a batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(kw_only=True)
class LimitsConfig:
    """What one request may ask for."""

    max_body_bytes: int = 64 * 2**20  # 413 beyond
    max_video_frames: int = 20_000  # frames in an uploaded video (clip length of the source)
    max_frame_pixels: int = 4096 * 2160  # width x height of a source frame
    max_clips: int = 16  # clips one encode request may produce (policy "windows")
    max_decode_rows: int = 16  # clips of ids one decode request may carry
    decode_timeout_s: float = 20.0  # wall-clock limit for decoding one untrusted file


class RequestError(Exception):
    """A request the endpoint refuses: HTTP ``status`` (4xx) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __reduce__(self):  # survives pickling across the decoding sandbox and Ray
        return (RequestError, (self.status, self.reason))


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """Collect a request body, refusing (413) as soon as it is, or says it will be, larger than ``limit``."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"bad Content-Length header {declared!r}") from None
        if size > limit:
            raise RequestError(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")
    parts, total = [], 0
    async for chunk in chunks:
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
