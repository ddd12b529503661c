"""Reading clips and images into model input, and writing pixels back out as video or image files.

Shared by the CLI, the batch job and the endpoint so all three cut clips the same way. Frames are
``uint8 (t, h, w, c)``; model input is ``float (t, h, w, c)`` in [-0.5, 0.5] (see ``sweettok.from_uint8``).
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np

ClipPolicy = Literal["center", "random", "windows"]
ResizePolicy = Literal["squash", "crop"]
# the one list of file types every path takes (tokenize, eval, training, fvd); compared case-insensitively
VIDEO_SUFFIXES = (".mp4", ".m4v", ".webm", ".avi", ".mkv", ".mov")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class MediaError(ValueError):
    """A file that cannot be read as a clip: corrupt, too short, or of an unknown type."""


@dataclass(kw_only=True)
class ClipSpec:
    """How to cut clips out of a video: ``frames`` per clip, which clips, and how to resize."""

    frames: int = 17
    height: int = 256
    width: int = 256
    policy: ClipPolicy = "center"
    stride: int | None = None  # for policy "windows"; defaults to ``frames``
    resize: ResizePolicy = "squash"
    seed: int = 0


@dataclass
class Clip:
    """One clip: uint8 frames (t, h, w, c), its first frame index and window index, and the source fps."""

    frames: np.ndarray
    start: int
    window: int
    fps: float


def clip_starts(num_frames: int, spec: ClipSpec, key: str = "") -> list[int]:
    """First-frame indices of the clips to take from a video of ``num_frames`` frames."""
    if num_frames < spec.frames:
        raise MediaError(f"too short: {num_frames} frames, a clip needs {spec.frames}")
    last = num_frames - spec.frames
    if spec.policy == "center":
        return [last // 2]
    if spec.policy == "random":
        return [random.Random(f"{spec.seed}:{key}").randint(0, last)]
    if spec.policy == "windows":
        return list(range(0, last + 1, spec.stride or spec.frames))
    raise MediaError(f"unknown clip policy {spec.policy!r}; expected center, random or windows")


def resize_frames(frames: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """(t, h, w, c) uint8 -> (t, spec.height, spec.width, c): squash, or short-side resize + centre crop."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    if spec.resize == "crop":
        scale = max(spec.height / h, spec.width / w)
        size = (max(spec.height, round(h * scale)), max(spec.width, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - spec.height) // 2, (size[1] - spec.width) // 2
        x = x[..., top : top + spec.height, left : left + spec.width]
    elif spec.resize == "squash":
        if (h, w) != (spec.height, spec.width):
            x = F.interpolate(x, size=(spec.height, spec.width), mode="bilinear", antialias=True, align_corners=False)
    else:
        raise MediaError(f"unknown resize policy {spec.resize!r}; expected squash or crop")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_SUFFIXES)


def read_image(source: str | bytes, spec: ClipSpec, max_pixels: int | None = None) -> Clip:
    """An image file (path or bytes) -> a one-frame clip; ``max_pixels`` is checked on the header first."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            check_frame_size(*im.size, max_pixels, " (image header)")
            frame = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise MediaError(f"cannot decode image: {e}") from e
    return Clip(frames=resize_frames(frame[None], spec), start=0, window=0, fps=0.0)


def check_frame_size(width: int, height: int, max_pixels: int | None, where: str = "") -> None:
    """Refuse (MediaError starting "too large") frames of more than ``max_pixels`` pixels."""
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(f"too large: frames of {width}x{height}{where} exceed the limit of {max_pixels} pixels")


def read_video(source: str | bytes, spec: ClipSpec, key: str = "", max_pixels: int | None = None) -> list[Clip]:
    """A video (path or bytes) -> its clips, decoding only the frames the clips need (decord).

    ``max_pixels`` refuses frames larger than that: by the container header before any decoding (see
    ``probe``), and by the decoded frames (a header can lie, or be missing)."""
    import decord

    from sweettok_platform.probe import frame_size

    if max_pixels is not None and (size := frame_size(source)) is not None:
        check_frame_size(*size, max_pixels, " (container header)")
    try:
        reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source, num_threads=1)
        num_frames, fps = len(reader), float(reader.get_avg_fps())
    except (decord.DECORDError, RuntimeError, OSError) as e:
        raise MediaError(f"cannot decode video: {str(e).splitlines()[0][:200]}") from e
    starts = clip_starts(num_frames, spec, key)
    clips = []  # each window is resized as soon as it is decoded: no full-size frames kept across windows
    for window, start in enumerate(starts):
        try:
            frames = reader.get_batch(list(range(start, start + spec.frames))).asnumpy()
        except (decord.DECORDError, RuntimeError) as e:
            if _DECORD_ROW_BUG not in str(e):
                raise MediaError(f"cannot decode frames {start}..{start + spec.frames - 1}: {str(e)[:200]}") from e
            frames = None
        if frames is None or frames.shape[-1] != 3:  # decord's narrow-frame bug: decode these with ffmpeg
            del reader
            everything = _ffmpeg_frames(source, starts[-1] + spec.frames)
            clips = []
            for w, s in enumerate(starts):
                check_frame_size(everything.shape[2], everything.shape[1], max_pixels)
                clips.append(Clip(frames=resize_frames(everything[s : s + spec.frames], spec), start=s, window=w,
                                  fps=fps))
            return clips
        check_frame_size(frames.shape[2], frames.shape[1], max_pixels)
        clips.append(Clip(frames=resize_frames(frames, spec), start=start, window=window, fps=fps))
    return clips


# decord sizes rows wrongly when a narrow frame's padded row is a multiple of its width (48x36, 72x36, 16x36:
# 4 or 6 "channels"; get_batch then fails with this message), so such videos are decoded with ffmpeg instead
_DECORD_ROW_BUG = "The size must exactly match"


def _ffmpeg_frames(source: str | bytes, count: int) -> np.ndarray:
    """The first ``count`` frames of a video as uint8 (count, h, w, 3), decoded by the ffmpeg executable."""
    import tempfile

    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        path = source
        if isinstance(source, bytes):
            path = os.path.join(tmp, "video")
            with open(path, "wb") as f:
                f.write(source)
        frames = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", bits_per_pixel=24)
        try:
            width, height = next(frames)["size"]
            out = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f, _ in zip(frames, range(count))]
        except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as e:
            raise MediaError(f"cannot decode video: {str(e).splitlines()[0][:200] if str(e) else e!r}") from e
        finally:
            frames.close()
    if len(out) < count:
        raise MediaError(f"cannot decode frames: the video gave {len(out)} frames, {count} needed")
    return np.stack(out)


def read_clips(source: str | bytes, spec: ClipSpec, name: str = "", max_pixels: int | None = None) -> list[Clip]:
    """Any supported file: images become one one-frame clip, videos their clips by policy.

    ``max_pixels`` refuses (MediaError "too large: ...") frames larger than that, before decoding them."""
    label = name or (source if isinstance(source, str) else "")
    if is_image(label):
        return [read_image(source, spec, max_pixels)]
    if isinstance(source, str) and not os.path.exists(source):
        raise MediaError(f"no such file: {source}")
    return read_video(source, spec, key=label, max_pixels=max_pixels)


def read_clips_uri(uri: str, spec: ClipSpec, name: str = "", max_pixels: int | None = None) -> list[Clip]:
    """Like ``read_clips`` for a local path or an ``s3://`` URI (remote files are fetched as bytes first).

    ``name`` (default: the uri) decides image vs video by its suffix and seeds the random clip policy."""
    from sweettok import storage

    if not storage.is_remote(uri):
        return read_clips(uri, spec, name=name or uri, max_pixels=max_pixels)
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError as e:
        raise MediaError(str(e)) from e
    return read_clips(data, spec, name=name or uri, max_pixels=max_pixels)


def write_media(pixels: np.ndarray, path: str, fps: float = 8.0) -> None:
    """uint8 frames (t, h, w, c) -> ``.mp4`` / ``.gif`` video, ``.png`` / ``.jpg`` image (first frame),
    or ``.npy`` raw frames."""
    import imageio.v3 as iio

    if path.endswith(".npy"):
        np.save(path, pixels)
    elif is_image(path):
        iio.imwrite(path, pixels[0])
    elif path.endswith(".mp4"):
        iio.imwrite(path, pixels, fps=fps, codec="libx264", macro_block_size=1)
    elif path.endswith(".gif"):
        iio.imwrite(path, pixels, duration=1000 / fps, loop=0)
    else:
        raise MediaError(f"unknown output type for {path}: use .mp4, .gif, .png, .jpg or .npy")


def encode_media(pixels: np.ndarray, fmt: str, fps: float = 8.0) -> bytes:
    """uint8 frames (t, h, w, c) -> file bytes in ``fmt`` ('mp4', 'png' or 'npy')."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"out.{fmt}")
        write_media(pixels, path, fps)
        with open(path, "rb") as f:
            return f.read()
