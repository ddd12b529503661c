"""Request bodies -> uint8 clips for the model: uploaded videos/images, pre-decoded ``.npy`` frames, S3 URIs.

Clips are cut exactly as the batch job cuts them (``sweettok_platform.core.media``: ``read_clips``,
``clip_starts``, ``resize_frames``). ``decode_upload`` runs inside the decoding sandbox (a separate
process with time and memory limits) because it parses untrusted container formats; ``.npy`` frames are
parsed in-process from their header (checked against the limits first) and raw bytes, never unpickled.
S3 inputs: ``uris``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from sweettok_platform.core.media import ClipSpec, MediaError, clip_starts, read_clips, resize_frames
from sweettok_platform.core.probe import frame_size
from sweettok_platform.serve.limits import LimitsConfig, RequestError, check_clips, check_frames

VIDEO_TYPES = {
    "video/mp4": ".mp4", "video/webm": ".webm", "video/x-msvideo": ".avi", "video/avi": ".avi",
    "video/msvideo": ".avi", "video/quicktime": ".mov",
}
IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg"}
NPY_TYPES = {"application/x-npy": ".npy", "application/npy": ".npy"}
SUFFIX_TYPES = {s: t for t, s in {**VIDEO_TYPES, **IMAGE_TYPES, **NPY_TYPES}.items()} | {".jpeg": "image/jpeg"}


@dataclass
class Clips:
    """Clips of one request: uint8 ``frames`` (n, t, h, w, c) at the model size, and where each starts."""

    frames: np.ndarray
    starts: list[int]
    windows: list[int]
    fps: float

    @property
    def kind(self) -> str:
        return "image" if self.frames.shape[1] == 1 else "video"


def suffix_for(content_type: str | None, filename: str = "") -> str:
    """The file suffix a content type (or, for ``application/octet-stream``, a file name) stands for; 415 else."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("", "application/octet-stream") and filename:
        media = SUFFIX_TYPES.get("." + filename.rsplit(".", 1)[-1].lower(), media)
    for table in (VIDEO_TYPES, IMAGE_TYPES, NPY_TYPES):
        if media in table:
            return table[media]
    raise RequestError(
        415,
        f"unsupported content type {media or '(none)'!r}; send a video ({', '.join(sorted(VIDEO_TYPES))}), "
        f"an image ({', '.join(sorted(IMAGE_TYPES))}), uint8 frames as application/x-npy, "
        "multipart/form-data with a 'file' field, or application/json {\"uri\": \"s3://...\"}",
    )


def decode_upload(data: bytes, suffix: str, spec: ClipSpec, limits: LimitsConfig) -> Clips:
    """An untrusted image or video file -> clips, after checking its frame size (from the file's header,
    before any decoding), frame count and clip count."""
    if suffix in IMAGE_TYPES.values():
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            reason = "not a recognised image file" if isinstance(e, UnidentifiedImageError) else str(e)[:200]
            raise RequestError(422, f"cannot decode image: {reason}") from None
        check_frames(1, height, width, limits)
    else:
        import decord

        size = frame_size(data)  # the container header, read without decoding
        if size is not None:
            check_frames(0, size[1], size[0], limits)
        try:
            num_frames = len(decord.VideoReader(io.BytesIO(data), num_threads=1))
        except (decord.DECORDError, RuntimeError, OSError, IndexError) as e:
            raise RequestError(422, f"cannot decode video: {str(e).splitlines()[0][:200] if str(e) else e!r}") from None
        check_frames(num_frames, 0, 0, limits)
        if num_frames >= spec.frames:
            check_clips(len(clip_starts(num_frames, spec)), limits)
    try:
        clips = read_clips(data, spec, name=f"upload{suffix}", max_pixels=limits.max_frame_pixels)
    except MediaError as e:
        raise RequestError(413 if str(e).startswith("too large") else 422, str(e)) from None
    return Clips(
        frames=np.stack([c.frames for c in clips]),
        starts=[c.start for c in clips],
        windows=[c.window for c in clips],
        fps=clips[0].fps,
    )


def _npy_frames(data: bytes, limits: LimitsConfig) -> np.ndarray:
    """The array in ``np.save`` bytes, after checking its header against the limits (nothing is allocated
    for a shape the header merely claims: the bytes must be there)."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f, max_header_size=10_000)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise RequestError(422, f"cannot read .npy frames: {str(e)[:200]}") from None
    if dtype != np.uint8 or len(shape) not in (3, 4) or shape[-1] != 3:
        raise RequestError(422, f"expected uint8 frames of shape (t, h, w, 3) or (h, w, 3), got {dtype} {shape}")
    t, h, w, _ = (1, *shape) if len(shape) == 3 else shape
    check_frames(t, h, w, limits)
    size = math.prod(shape)
    if len(data) - f.tell() != size:
        raise RequestError(422, f"the .npy header declares {shape} ({size} bytes of frames) but the body holds "
                                f"{len(data) - f.tell()} bytes after the header")
    frames = np.frombuffer(data, np.uint8, count=size, offset=f.tell())
    frames = frames.reshape(shape[::-1]).transpose() if fortran else frames.reshape(shape)
    return frames.reshape(t, h, w, 3)


def decode_npy(data: bytes, spec: ClipSpec, limits: LimitsConfig) -> Clips:
    """uint8 frames saved with ``np.save``: (h, w, 3) or (1, h, w, 3) is an image, (t, h, w, 3) a video."""
    frames = _npy_frames(data, limits)
    t, h, w, _ = frames.shape
    if t == 1:
        starts = [0]
    else:
        try:
            starts = clip_starts(t, spec, key="upload.npy")
        except MediaError as e:
            raise RequestError(422, str(e)) from None
        check_clips(len(starts), limits)
    length = 1 if t == 1 else spec.frames
    if (h, w) == (spec.height, spec.width):  # already at the model size: no resize needed
        return Clips(frames=np.stack([frames[s : s + length] for s in starts]), starts=starts,
                     windows=list(range(len(starts))), fps=0.0)
    try:
        clips = [resize_frames(frames[s : s + length], spec) for s in starts]
    except MediaError as e:
        raise RequestError(422, str(e)) from None
    return Clips(frames=np.stack(clips), starts=starts, windows=list(range(len(starts))), fps=0.0)
