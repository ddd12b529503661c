"""Per-worker clip data for training: a deterministic sharded loader over decoded, cached clips.

Why not Ray Data shards: resuming must restart at the exact sample after the last checkpoint, and a
streaming ``iter_torch_batches`` cannot seek. Here every worker lists the same clip index
(file, first frame), takes every ``world``-th clip from ``rank``, decodes only those frames once (decord,
via ``sweettok_platform.media``) into a per-node ``.npy`` cache, and walks a seeded per-epoch permutation.
The data position is the number of samples this worker has consumed, saved in every checkpoint.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sweettok_platform.media import ClipSpec, MediaError, clip_starts, is_image, is_video, read_image, resize_frames
from sweettok_platform.probe import video_frames
from sweettok_platform.train.config import DatasetConfig



@dataclass(frozen=True)
class ClipRef:
    """One training sample: ``frames`` frames of ``path`` from ``start`` (images: start 0, 1 frame)."""

    path: str
    start: int
    frames: int


def resolve_paths(paths: list[str]) -> list[str]:
    """Files, directories (searched recursively) and glob patterns -> sorted media files.

    Raises FileNotFoundError naming the entry that matched nothing."""
    if not paths:
        raise FileNotFoundError("dataset.paths is empty: list video/image files, directories or globs")
    out: set[str] = set()
    for entry in paths:
        if "://" in entry:
            raise ValueError(f"dataset path {entry!r}: training reads local (or mounted) files only")
        if os.path.isdir(entry):
            found = [os.path.join(r, f) for r, _, fs in os.walk(entry) for f in fs]
        elif any(ch in entry for ch in "*?["):
            found = glob.glob(entry, recursive=True)
        elif os.path.isfile(entry):
            found = [entry]
        else:
            raise FileNotFoundError(f"dataset path does not exist: {entry}")
        media = [os.path.abspath(f) for f in found if is_video(f) or is_image(f)]
        if not media:
            raise FileNotFoundError(f"dataset path {entry} holds no video or image files")
        out.update(media)
    return sorted(out)


def list_clips(files: list[str], frames: int, stride: int, max_clips: int | None = None) -> list[ClipRef]:
    """The global clip index: windows of ``frames`` frames every ``stride`` frames of each video; image
    files count as one-frame clips when ``frames == 1``. Videos too short (or unreadable) are skipped."""
    import decord

    spec = ClipSpec(frames=frames, policy="windows", stride=stride)
    refs: list[ClipRef] = []
    for path in files:
        if is_image(path):
            if frames == 1:
                refs.append(ClipRef(path, 0, 1))
            continue
        try:
            # the header's sample table when it has one (MP4/MOV: no read of the media data); else decord,
            # which reads the whole file to count
            num = video_frames(path) or len(decord.VideoReader(path, num_threads=1))
            refs += [ClipRef(path, s, frames) for s in clip_starts(num, spec)]
        except (decord.DECORDError, RuntimeError, MediaError):
            continue
    if max_clips is not None:
        # spread the cap over all files instead of taking the first file's clips
        idx = np.linspace(0, len(refs) - 1, num=min(max_clips, len(refs))).round().astype(int) if refs else []
        refs = [refs[i] for i in sorted(set(int(i) for i in idx))]
    return refs


class ClipCache:
    """Decoded clips as uint8 (t, h, w, c) ``.npy`` files, keyed by source file, window and size."""

    def __init__(self, root: str | None, height: int, width: int, resize: str) -> None:
        self.root = root or os.path.join(tempfile.gettempdir(), "sweettok-clip-cache")
        os.makedirs(self.root, exist_ok=True)
        self.spec = ClipSpec(frames=1, height=height, width=width, resize=resize)  # size + resize policy

    def _key(self, ref: ClipRef) -> str:
        st = os.stat(ref.path)
        raw = json.dumps([ref.path, st.st_size, int(st.st_mtime), ref.start, ref.frames,
                          self.spec.height, self.spec.width, self.spec.resize])
        return os.path.join(self.root, hashlib.sha1(raw.encode()).hexdigest() + ".npy")

    def load(self, refs: list[ClipRef]) -> list[np.ndarray]:
        """Every clip of ``refs`` (decoding and caching the missing ones; one reader per video)."""
        import decord

        out: dict[int, np.ndarray] = {}
        missing: dict[str, list[int]] = {}
        for i, ref in enumerate(refs):
            key = self._key(ref)
            if os.path.exists(key):
                out[i] = np.load(key, mmap_mode="r")
            else:
                missing.setdefault(ref.path, []).append(i)
        for path, indices in missing.items():
            reader = None if is_image(path) else decord.VideoReader(path, num_threads=1)
            for i in indices:
                ref = refs[i]
                if reader is None:
                    frames = read_image(path, self.spec).frames
                else:
                    raw = reader.get_batch(list(range(ref.start, ref.start + ref.frames))).asnumpy()
                    frames = resize_frames(raw, self.spec)
                key = self._key(ref)
                tmp = f"{key}.{os.getpid()}.tmp.npy"
                np.save(tmp, frames)
                os.replace(tmp, key)  # atomic: two workers on a node may decode the same clip
                out[i] = frames
        return [out[i] for i in range(len(refs))]


class ShardedClipLoader:
    """Batches of this worker's clips as float ``(b, c, t, h, w)`` in [-0.5, 0.5], in a seeded order.

    ``position`` counts samples consumed; ``seek(position)`` restores it exactly. Each epoch is a fresh
    permutation (seed, epoch) of the shard; a batch never straddles two epochs' orders inconsistently
    because the order is a pure function of (seed, epoch).
    """

    def __init__(
        self, clips: list[np.ndarray], batch_size: int, seed: int,
        size: tuple[int, int] | None = None, flip: bool = False,
    ) -> None:
        if not clips:
            raise ValueError("this worker's data shard is empty: add clips or use fewer workers")
        self.clips, self.batch_size, self.seed = clips, batch_size, seed
        self.size, self.flip = size, flip  # random crop to ``size`` (h, w) and random horizontal flips
        self.position = 0
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=int))

    def __len__(self) -> int:
        return len(self.clips)

    def _order(self, epoch: int) -> np.ndarray:
        if self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.clips)))
        return self._cached[1]

    def seek(self, position: int) -> None:
        self.position = int(position)

    def _augment(self, clip: np.ndarray, k: int) -> np.ndarray:
        """Sample ``k``'s random crop and flip: a pure function of (seed, k), so a resumed run sees the same."""
        if self.size is None and not self.flip:
            return clip
        rng = np.random.default_rng([self.seed, k, 1])
        (h, w), (full_h, full_w) = self.size or clip.shape[1:3], clip.shape[1:3]
        y, x = int(rng.integers(0, full_h - h + 1)), int(rng.integers(0, full_w - w + 1))
        clip = clip[:, y : y + h, x : x + w]  # (t, h, w, c)
        return clip[:, :, ::-1] if self.flip and rng.random() < 0.5 else clip

    def next_batch(self) -> Tensor:
        n = len(self.clips)
        picks = []
        for k in range(self.position, self.position + self.batch_size):
            epoch, i = divmod(k, n)
            picks.append(self._augment(self.clips[int(self._order(epoch)[i])], k))
        self.position += self.batch_size
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(picks)))  # (b, t, h, w, c) uint8
        return batch.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # (b, c, t, h, w)


def worker_loader(
    dataset: DatasetConfig, *, frames: int, height: int, width: int, images: bool,
    batch_size: int, rank: int, world: int, seed: int,
) -> ShardedClipLoader:
    """This worker's loader: clips of ``frames`` frames (or single frames when ``images``)."""
    files = resolve_paths(dataset.paths)
    if images:
        refs = list_clips(files, 1, dataset.image_stride or frames, dataset.max_clips)
    else:
        refs = list_clips([f for f in files if not is_image(f)], frames, dataset.stride or frames, dataset.max_clips)
    if len(refs) < world:
        kind = "images" if images else f"{frames}-frame clips"
        raise ValueError(f"the dataset yields {len(refs)} {kind}, fewer than the {world} workers")
    scale = dataset.crop_scale
    cache = ClipCache(dataset.cache_dir, round(height * scale), round(width * scale), dataset.resize)
    clips = cache.load(refs[rank::world])
    size = (height, width) if scale != 1.0 else None
    return ShardedClipLoader(clips, batch_size, seed=seed * 1000 + rank, size=size, flip=dataset.flip)
