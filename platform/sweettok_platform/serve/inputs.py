"""Request bodies -> uint8 clips for the model: uploaded videos/images, pre-decoded ``.npy`` frames, S3 URIs.

Clips are cut exactly as the batch job cuts them (``sweettok_platform.media``: ``read_clips``,
``clip_starts``, ``resize_frames``). ``decode_file`` runs inside the decoding sandbox (a separate
process with a time limit) because it parses untrusted container formats; ``.npy`` frames are parsed
in-process with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from sweettok_platform.media import ClipSpec, MediaError, clip_starts, read_clips, resize_frames
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


def decode_file(data: bytes, suffix: str, spec: ClipSpec, limits: LimitsConfig) -> Clips:
    """An untrusted image or video file -> clips, after checking its frame count, frame size and clip count."""
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

        try:
            reader = decord.VideoReader(io.BytesIO(data), num_threads=1)
            num_frames = len(reader)
            height, width = reader[0].shape[:2]
        except (decord.DECORDError, RuntimeError, OSError, IndexError) as e:
            raise RequestError(422, f"cannot decode video: {str(e).splitlines()[0][:200] if str(e) else e!r}") from None
        check_frames(num_frames, height, width, limits)
        if num_frames >= spec.frames:
            check_clips(len(clip_starts(num_frames, spec)), limits)
    try:
        clips = read_clips(data, spec, name=f"upload{suffix}")
    except MediaError as e:
        raise RequestError(422, str(e)) from None
    return Clips(
        frames=np.stack([c.frames for c in clips]),
        starts=[c.start for c in clips],
        windows=[c.window for c in clips],
        fps=clips[0].fps,
    )


def decode_npy(data: bytes, spec: ClipSpec, limits: LimitsConfig) -> Clips:
    """uint8 frames saved with ``np.save``: (h, w, 3) or (1, h, w, 3) is an image, (t, h, w, 3) a video."""
    try:
        frames = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise RequestError(422, f"cannot read .npy frames: {e}") from None
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise RequestError(
            422, f"expected uint8 frames of shape (t, h, w, 3) or (h, w, 3), got {frames.dtype} {frames.shape}"
        )
    t, h, w, _ = frames.shape
    check_frames(t, h, w, limits)
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


def fetch_uri(uri: str, limits: LimitsConfig) -> bytes:
    """The bytes of an ``s3://`` object: 404 if absent, 413 past the body limit, 403/502 on storage errors."""
    import pyarrow.fs as pafs

    from sweettok import storage

    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise RequestError(400, f"only s3:// URIs can be encoded by the endpoint, got {uri!r}")
    try:
        fs, path = storage.resolve(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise RequestError(404, f"no such object: {uri}")
        if info.type != pafs.FileType.File:
            raise RequestError(400, f"not a file: {uri}")
        if info.size is not None and info.size > limits.max_body_bytes:
            raise RequestError(413, f"{uri} has {info.size} bytes; the limit is {limits.max_body_bytes}")
        return storage.read_bytes(uri)
    except FileNotFoundError:
        raise RequestError(404, f"no such object: {uri}") from None
    except OSError as e:
        text = str(e)
        if "NoSuchBucket" in text or "NoSuchKey" in text or "does not exist" in text:
            raise RequestError(404, f"no such object: {uri}") from None
        if "AccessDenied" in text or "Forbidden" in text or "403" in text:
            raise RequestError(403, f"access denied to {uri}") from None
        raise RequestError(502, f"storage error reading {uri}: {text.splitlines()[0][:200]}") from None
