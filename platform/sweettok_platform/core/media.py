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
    """(t, h, w, c) uint8 -> (t, spec.height, spec.width, c): squash, or short-side resize + centre crop.

    Antialiased bilinear, computed in uint8 (torch's channels-last uint8 kernel): 5-14x faster than through
    float32 and no float copy of the frames is made; it differs from the float path by at most 1 level."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)  # channels-last view
    h, w = x.shape[-2:]
    if spec.resize == "crop":
        scale = max(spec.height / h, spec.width / w)
        size = (max(spec.height, round(h * scale)), max(spec.width, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - spec.height) // 2, (size[1] - spec.width) // 2
        x = x[..., top : top + spec.height, left : left + spec.width]
    elif spec.resize == "squash":
        if (h, w) != (spec.height, spec.width):
            x = F.interpolate(x, size=(spec.height, spec.width), mode="bilinear", antialias=True, align_corners=False)
    else:
        raise MediaError(f"unknown resize policy {spec.resize!r}; expected squash or crop")
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


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
    video = VideoWindows(source, spec, key, max_pixels)
    return video.clips(0, len(video))


class VideoWindows:
    """An opened video and the clips ``spec`` takes from it, decoded a window at a time on request: a long
    video is read in groups of windows (``clips(first, count)``) without keeping any other window's frames.

    Raises MediaError when the file cannot be opened, is too short, or its header declares frames over
    ``max_pixels``."""

    def __init__(self, source: str | bytes, spec: ClipSpec, key: str = "", max_pixels: int | None = None) -> None:
        import decord

        from sweettok_platform.core.probe import frame_size

        if max_pixels is not None and (size := frame_size(source)) is not None:
            check_frame_size(*size, max_pixels, " (container header)")
        try:
            self._reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source,
                                              num_threads=1)
            num_frames, self.fps = len(self._reader), float(self._reader.get_avg_fps())
        except (decord.DECORDError, RuntimeError, OSError) as e:
            raise MediaError(f"cannot decode video: {str(e).splitlines()[0][:200]}") from e
        self.source, self.spec, self.max_pixels = source, spec, max_pixels
        self.num_frames = num_frames
        self.starts = clip_starts(num_frames, spec, key)
        self._ffmpeg: np.ndarray | None = None  # every frame, for videos decord misreads (see _DECORD_ROW_BUG)
        self._next = 0  # index of the frame the reader decodes next
        self._kept: list[tuple[int, np.ndarray]] = []  # the last window's frames (overlapping windows reuse them)
        self._window: np.ndarray | None = None  # the buffer _read fills

    def __len__(self) -> int:
        return len(self.starts)

    def clips(self, first: int, count: int) -> list[Clip]:
        """Windows ``first .. first + count - 1`` (those that exist), each resized as soon as it is decoded."""
        return [self.clip(w) for w in range(first, min(first + count, len(self.starts)))]

    def clip(self, window: int) -> Clip:
        import decord

        start, n = self.starts[window], self.spec.frames
        frames = None
        if self._ffmpeg is None:
            try:
                frames = self._read(start, n)
            except (decord.DECORDError, RuntimeError, StopIteration) as e:
                if _DECORD_ROW_BUG not in str(e):
                    raise MediaError(f"cannot decode frames {start}..{start + n - 1}: {str(e)[:200]}") from e
        if frames is None or frames.shape[-1] != 3:  # decord's narrow-frame bug: decode these with ffmpeg
            if self._ffmpeg is None:
                self._ffmpeg = _ffmpeg_frames(self.source, self.starts[-1] + n)
            frames = self._ffmpeg[start : start + n]
        check_frame_size(frames.shape[2], frames.shape[1], self.max_pixels)
        out = resize_frames(frames, self.spec)
        if np.shares_memory(out, frames):  # already the model's size: not resized, so not yet a copy
            out = out.copy()
        return Clip(frames=out, start=start, window=window, fps=self.fps)

    def _read(self, start: int, n: int) -> np.ndarray:
        """Frames ``start .. start + n - 1`` read forward (decord's ``get_batch`` keeps memory that grows with
        the position in the file: ~350 MB after 160 s of 720p, against ~110 MB reading forward); frames the
        previous window already decoded are reused, a gap of up to a few windows is skipped by decoding, a
        jump back or further ahead seeks."""
        kept = [(i, f) for i, f in self._kept if start <= i < start + n]
        if kept and kept[0][0] != start:
            kept = []
        first = start + len(kept)
        if first != self._next:
            if first < self._next or first - self._next > 4 * n:
                self._reader.seek_accurate(first)
            else:
                self._reader.skip_frames(first - self._next)
            self._next = first
        for i in range(first, start + n):
            kept.append((i, self._reader.next().asnumpy()))
            self._next = i + 1
        self._kept = kept
        # one buffer for every window: a fresh (t, h, w, c) array per window at source size made the process
        # grow with the video (glibc kept the freed blocks), ~2x over 160 s of 720p
        shape = (n, *kept[0][1].shape)
        if self._window is None or self._window.shape != shape:
            self._window = np.empty(shape, np.uint8)
        for k, (_, frame) in enumerate(kept):
            self._window[k] = frame
        return self._window


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


class _OneClip:
    """An image as a one-window source (the shape ``VideoWindows`` has)."""

    def __init__(self, clip: Clip) -> None:
        self.one = clip

    def __len__(self) -> int:
        return 1

    def clips(self, first: int, count: int) -> list[Clip]:
        return [self.one] if first == 0 and count > 0 else []


def open_clips(source: str | bytes, spec: ClipSpec, name: str = "", max_pixels: int | None = None):
    """Any supported file, opened: ``len()`` windows and ``clips(first, count)``; images are one one-frame clip.

    ``max_pixels`` refuses (MediaError "too large: ...") frames larger than that, before decoding them."""
    label = name or (source if isinstance(source, str) else "")
    if is_image(label):
        return _OneClip(read_image(source, spec, max_pixels))
    if isinstance(source, str) and not os.path.exists(source):
        raise MediaError(f"no such file: {source}")
    return VideoWindows(source, spec, key=label, max_pixels=max_pixels)


def open_clips_uri(uri: str, spec: ClipSpec, name: str = "", max_pixels: int | None = None):
    """Like ``open_clips`` for a local path or an ``s3://`` URI (remote files are fetched as bytes first).

    ``name`` (default: the uri) decides image vs video by its suffix and seeds the random clip policy."""
    from sweettok import storage

    if not storage.is_remote(uri):
        return open_clips(uri, spec, name=name or uri, max_pixels=max_pixels)
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError as e:
        raise MediaError(str(e)) from e
    return open_clips(data, spec, name=name or uri, max_pixels=max_pixels)


def read_clips(source: str | bytes, spec: ClipSpec, name: str = "", max_pixels: int | None = None) -> list[Clip]:
    """Every clip of any supported file (see ``open_clips``)."""
    opened = open_clips(source, spec, name, max_pixels)
    return opened.clips(0, len(opened))


def read_clips_uri(uri: str, spec: ClipSpec, name: str = "", max_pixels: int | None = None) -> list[Clip]:
    """Every clip of a local path or an ``s3://`` URI (see ``open_clips_uri``)."""
    opened = open_clips_uri(uri, spec, name, max_pixels)
    return opened.clips(0, len(opened))


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
