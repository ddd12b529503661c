"""Folder-in, folder-out reconstruction, the parts: listing the inputs, and one file's reconstruction
(``Reconstructor``), shared by the in-process loop and the Ray actors (``run``, ``ray_pool``).

Every video or image matched by some patterns (files, folders, globs,
``s3://`` prefixes) goes through the tokenizer (encode, then decode) and is written under an output folder at
the same relative path, so ``sweettok eval compare`` can pair inputs and reconstructions.

A video is cut into consecutive windows of the model's clip length (the last window ends on the last frame,
overlapping the one before it, so every frame is reconstructed once); the decoded windows are stitched back in
order. Output frames have the model's size (a squash of the source, as the tokenizer sees it) and the source's
frame rate. Files already written are skipped (outputs are written to a temporary name and renamed, so an
output that exists is complete); a file that cannot be read is listed with its reason and the run goes on.
Plain Python and PyTorch; ``--ray`` spreads the files over an actor pool (``reconstruct_ray``).
"""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch

from sweettok import SweetTokenizer, from_uint8, storage, to_uint8
from sweettok_platform.core.media import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, ClipSpec, MediaError, VideoWindows, is_image,
                                     open_clips_uri)
from sweettok_platform.reconstruct.writer import OutputWriter

MEDIA_SUFFIXES = VIDEO_SUFFIXES + IMAGE_SUFFIXES


@dataclass(frozen=True)
class Task:
    """One input file and its path relative to the output folder (the input's suffix replaced)."""

    source: str
    relative: str


@dataclass(kw_only=True)
class ReconstructConfig:
    """Inputs, output, and the tokenizer (a bundle, or a preset with fresh weights)."""

    inputs: list[str]
    output: str
    bundle: str | None = None
    preset: str | None = None
    seed: int = 0
    video_format: str = "mp4"  # mp4 (h264) or npy (lossless uint8 frames)
    batch_size: int = 8  # windows per forward pass
    progress: bool = True
    ray: bool = False
    actors: int = 2  # with ray
    ray_address: str | None = None


@dataclass
class ReconstructResult:
    """What a run did: files written, skipped (already there), and the per-file errors."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    tokenizer: str = ""
    seconds: float = 0.0


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard: outputs mirror the tree below it."""
    parts = pattern.split(os.sep)
    return os.sep.join(parts[: next(i for i, p in enumerate(parts) if _is_glob(p))]) or "."


def output_name(relative: str, video_format: str) -> str:
    """``a/b.avi`` -> ``a/b.mp4`` (or ``.npy``); images keep ``.png``."""
    stem = os.path.splitext(relative)[0]
    return stem + (".png" if is_image(relative) else f".{video_format}")


def list_tasks(patterns: Iterable[str], video_format: str = "mp4") -> tuple[list[Task], list[dict[str, str]]]:
    """Every media file the patterns match, with its relative output path; patterns that match nothing are
    returned as errors. Two inputs that would write the same output are refused."""
    tasks: list[Task] = []
    errors: list[dict[str, str]] = []
    for pattern in patterns:
        found: list[tuple[str, str]] = []
        if storage.is_remote(pattern):
            if pattern.lower().endswith(MEDIA_SUFFIXES) and storage.exists(pattern):
                found = [(pattern, pattern.rstrip("/").rsplit("/", 1)[-1])]
            else:
                try:
                    found = [(f, storage.relative(f, pattern)) for f in storage.list_files(pattern, MEDIA_SUFFIXES)]
                except (FileNotFoundError, NotADirectoryError):
                    found = []
        elif _is_glob(pattern):
            base = _glob_base(pattern)
            found = [(f, os.path.relpath(f, base)) for f in sorted(glob.glob(pattern, recursive=True))
                     if os.path.isfile(f) and f.lower().endswith(MEDIA_SUFFIXES)]
        elif os.path.isdir(pattern):
            found = [(f, os.path.relpath(f, pattern)) for f in storage.list_files(pattern, MEDIA_SUFFIXES)]
        elif os.path.isfile(pattern):
            found = [(pattern, os.path.basename(pattern))]
        if not found:
            errors.append({"input": pattern, "reason": "matches no video or image file "
                                                       f"({'/'.join(s.lstrip('.') for s in MEDIA_SUFFIXES)})"})
        tasks += [Task(src, output_name(rel.replace(os.sep, "/"), video_format)) for src, rel in found]
    seen: dict[str, str] = {}
    for task in tasks:
        if task.relative in seen and seen[task.relative] != task.source:
            raise ValueError(f"{seen[task.relative]} and {task.source} would both be written to {task.relative}; "
                             "reconstruct them into separate output folders")
        seen[task.relative] = task.source
    unique = list({t.relative: t for t in tasks}.values())
    return unique, errors


def stitch_starts(num_frames: int, frames: int) -> list[int]:
    """Window starts covering every frame: consecutive windows, the last one ending on the last frame."""
    if num_frames < frames:
        raise MediaError(f"too short: {num_frames} frames, a clip needs {frames}")
    starts = list(range(0, num_frames - frames + 1, frames))
    if starts[-1] + frames < num_frames:
        starts.append(num_frames - frames)
    return starts


class Reconstructor:
    """Loads the tokenizer once; ``__call__(task, output)`` reconstructs one file (safe to repeat)."""

    def __init__(self, model: SweetTokenizer, *, video_format: str = "mp4", batch_size: int = 8) -> None:
        if video_format not in ("mp4", "npy"):
            raise ValueError(f"video_format must be mp4 or npy, got {video_format!r}")
        self.model, self.video_format, self.batch_size = model.eval(), video_format, batch_size
        p = model.config.patch
        self.spec = ClipSpec(frames=p.frames, height=p.height, width=p.width, policy="windows")

    @torch.no_grad()
    def _run(self, clips: list[np.ndarray]) -> np.ndarray:
        """uint8 windows (t, h, w, c) -> their reconstructions, one forward pass."""
        x = from_uint8(torch.from_numpy(np.stack(clips)))  # (b, t, h, w, c)
        return to_uint8(self.model.decode_ids(self.model.encode(x))).permute(0, 2, 3, 4, 1).numpy()

    def stream(self, source: str) -> tuple[Iterator[np.ndarray], int, float]:
        """The reconstruction of ``source`` as it is computed: stitched uint8 frames (k, h, w, c) at the model
        size, a batch of windows at a time; the total frame count; the source fps (0 for images)."""
        opened = open_clips_uri(source, self.spec)
        if not isinstance(opened, VideoWindows):  # an image: one one-frame clip
            return iter([self._run([opened.clips(0, 1)[0].frames])[0]]), 1, 0.0
        frames = self.spec.frames
        opened.starts = stitch_starts(opened.num_frames, frames)

        def chunks() -> Iterator[np.ndarray]:
            covered = 0  # frames already given
            for first in range(0, len(opened), self.batch_size):
                clips = opened.clips(first, self.batch_size)
                for clip, window in zip(clips, self._run([c.frames for c in clips])):
                    yield window[covered - clip.start :]  # the last window overlaps the one before
                    covered = clip.start + frames

        return chunks(), opened.num_frames, opened.fps

    def frames(self, source: str) -> np.ndarray:
        """The whole reconstruction of ``source``: uint8 (t, h, w, c)."""
        return np.concatenate(list(self.stream(source)[0]))

    def __call__(self, task: Task, output: str) -> None:
        """Reconstruct ``task`` into ``output`` at its relative path, written as it is computed under a
        temporary name and renamed when complete."""
        chunks, total, fps = self.stream(task.source)
        target = storage.join(output, *task.relative.split("/"))
        suffix = os.path.splitext(task.relative)[1]
        remote = storage.is_remote(target)
        with tempfile.TemporaryDirectory() as tmp:
            if remote:
                partial = os.path.join(tmp, "out" + suffix)
            else:
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                partial = f"{target}.part{suffix}"
            writer = OutputWriter(partial, total, fps or 8.0)
            try:
                for chunk in chunks:
                    writer.append(chunk)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            if remote:
                with open(partial, "rb") as f:
                    storage.write_bytes(target, f.read())
            else:
                os.replace(partial, target)  # an output that exists is complete


def load_model(config: ReconstructConfig) -> SweetTokenizer:
    from sweettok_platform.core.tokenizer import build_tokenizer

    return build_tokenizer(config.bundle, config.preset, config.seed)  # neither: the shipped bundle


def tokenizer_name(model: SweetTokenizer, config: ReconstructConfig) -> str:
    return getattr(model, "bundle_hash", None) or f"preset:{config.preset}:seed{config.seed}"


def error_record(task: Task, e: BaseException | None) -> dict[str, str] | None:
    if e is None:
        return None
    if not isinstance(e, (MediaError, OSError, RuntimeError, ValueError)):
        raise e
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return {"input": task.source, "output": task.relative, "reason": reason[:300]}


def reconstruct_one(run: Reconstructor, task: Task, output: str) -> dict[str, str] | None:
    """None when written, else the error record {input, output, reason} (bad files never stop a run)."""
    try:
        run(task, output)
    except (MediaError, OSError, RuntimeError, ValueError) as e:
        return error_record(task, e)
    return None
