"""Per-worker clip data for training: a deterministic sharded loader that decodes clips as it goes.

Why not Ray Data shards: resuming must restart at the exact sample after the last checkpoint, and a
streaming ``iter_torch_batches`` cannot seek. Here every worker cuts the same clip list (file, first frame)
from the dataset index (``train.index``: frame counts read once, by the driver), takes every ``world``-th
clip from ``rank``, and walks a seeded per-epoch permutation of its share. Clips are decoded when a batch
needs them (decord, only the clip's frames), one batch ahead by background threads, so memory holds two
batches whatever the dataset's size and the first step waits for one batch, not for the whole shard. The
threads hand the decoding itself to helper processes (``dataset.decode_helper``, the tokenize job's sandboxed
decoder: one per thread): decoding in-process threads slowed the training step by ~25% on 2 cores while
using only 1.3 of them, and a file that hangs or crashes the decoder now fails with its name instead of
taking the worker down.
With ``dataset.cache_dir`` set, each decoded clip is also kept there as ``.npy`` and read back in later
epochs and stages (disk grows with the clips seen). The data position is the number of samples this worker
has consumed, saved in every checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from sweettok import storage
from sweettok_platform.core.media import ClipSpec, MediaError, clip_starts, is_image, read_image, resize_frames
from sweettok_platform.core.sources import Item, backing_file, list_items, read_item
from sweettok_platform.train import index as dataset_index
from sweettok_platform.train.config import DatasetConfig


@dataclass(frozen=True)
class ClipRef:
    """One training sample: ``frames`` frames of ``path`` from ``start`` (images: start 0, 1 frame)."""

    path: str
    start: int
    frames: int


def dataset_files(dataset: DatasetConfig) -> list[str]:
    """The uris of the dataset's media (``dataset.source``, any source kind), in its stable order; training
    reads local (or mounted) storage only."""
    uris = [item.uri for item in list_items(dataset.source)]
    remote = next((u for u in uris if storage.is_remote(backing_file(u))), None)
    if remote is not None:
        raise ValueError(f"dataset.source: {remote}: training reads local (or mounted) files only")
    if not uris:
        raise FileNotFoundError(f"dataset.source lists no files ({dataset.source.kind})")
    return uris


def list_clips(files: list[str], frames: int, stride: int, max_clips: int | None = None) -> list[ClipRef]:
    """The global clip index of ``files`` (probed now; see ``clips_from_index``)."""
    return clips_from_index(dataset_index.DatasetIndex(dataset_index.build(files, parallel=False)),
                            frames, stride, max_clips)


def clips_from_index(index: dataset_index.DatasetIndex, frames: int, stride: int,
                     max_clips: int | None = None) -> list[ClipRef]:
    """Windows of ``frames`` frames every ``stride`` frames of each video; image files count as one-frame
    clips when ``frames == 1``. Videos too short (or unreadable) give none. ``max_clips`` spreads the cap
    over all files instead of taking the first file's clips."""
    spec = ClipSpec(frames=frames, policy="windows", stride=stride)
    refs: list[ClipRef] = []
    for path, num in zip(index.paths, index.frames):
        if is_image(path):
            if frames == 1 and num > 0:
                refs.append(ClipRef(path, 0, 1))
        elif num > 0:
            refs += [ClipRef(path, s, frames) for s in clip_starts(num, spec)]
    if max_clips is not None:
        idx = np.linspace(0, len(refs) - 1, num=min(max_clips, len(refs))).round().astype(int) if refs else []
        refs = [refs[i] for i in sorted(set(int(i) for i in idx))]
    return refs


HELPER_TIMEOUT_S = 120.0  # one training clip's decode in a helper process


class ClipDecoder:
    """One clip -> uint8 ``(t, h, w, c)`` at the loader's size; with ``cache_dir``, decoded clips are kept
    there as ``.npy`` (keyed by file, size, mtime, window and size) and read back instead of decoded.

    With ``helper``, video clips are decoded by helper processes (``data.decode.TimedDecoder``: one per
    calling thread, each clip under ``HELPER_TIMEOUT_S``); without, by decord in the calling thread. Both
    give the same pixels (tested). ``close()`` stops the helpers."""

    def __init__(self, cache_dir: str | None, height: int, width: int, resize: str, helper: bool = False) -> None:
        self.root = cache_dir
        if self.root:
            os.makedirs(self.root, exist_ok=True)
        self.spec = ClipSpec(frames=1, height=height, width=width, resize=resize)  # size + resize policy
        self.helper = helper
        self._local = threading.local()  # this thread's helpers, by clip length
        self._helpers: list = []
        self._lock = threading.Lock()

    def _helper_for(self, frames: int):
        from sweettok_platform.core.decode import TimedDecoder

        helpers = self._local.__dict__.setdefault("helpers", {})
        if frames not in helpers:
            # window w of a stride-1 "windows" spec starts at frame w: a clip is the window at its start
            spec = ClipSpec(frames=frames, height=self.spec.height, width=self.spec.width, policy="windows",
                            stride=1, resize=self.spec.resize)
            helpers[frames] = TimedDecoder(spec, HELPER_TIMEOUT_S)
            with self._lock:
                self._helpers.append(helpers[frames])
        return helpers[frames]

    def close(self) -> None:
        with self._lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close()

    def _key(self, ref: ClipRef) -> str:
        st = os.stat(backing_file(ref.path))
        raw = json.dumps([ref.path, st.st_size, int(st.st_mtime), ref.start, ref.frames,
                          self.spec.height, self.spec.width, self.spec.resize])
        return os.path.join(str(self.root), hashlib.sha1(raw.encode()).hexdigest() + ".npy")

    def __call__(self, ref: ClipRef) -> np.ndarray:
        key = self._key(ref) if self.root else None
        if key is not None and os.path.exists(key):
            return np.load(key)
        try:
            frames = self._decode(ref)
        except Exception as e:  # noqa: BLE001 - one message naming the clip, whatever the decoder raised
            raise MediaError(f"training clip {ref.path} frames {ref.start}..{ref.start + ref.frames - 1}: {e} "
                             "(the file changed or broke after the dataset index was built?)") from e
        if key is not None:
            # a name of its own per write: two workers on a node, or two decode threads of one loader (the
            # same clip in consecutive batches across an epoch boundary), may decode the same clip at once
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp.npy")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, frames)
                os.replace(tmp, key)  # atomic: a reader sees the whole clip or none
            except BaseException:
                os.unlink(tmp)
                raise
        return frames

    def _decode(self, ref: ClipRef) -> np.ndarray:
        if is_image(ref.path):
            return read_image(read_item(ref.path), self.spec).frames
        if self.helper:
            result = self._helper_for(ref.frames).group(Item(uri=ref.path, key=ref.path), ref.start, 1)
            if result.error is not None or len(result.clips) != 1 or result.clips[0].start != ref.start:
                raise MediaError(result.error or f"no clip at frame {ref.start}")
            return result.clips[0].frames
        import decord

        source = read_item(ref.path)
        reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source, num_threads=1)
        raw = reader.get_batch(list(range(ref.start, ref.start + ref.frames))).asnumpy()
        return resize_frames(raw, self.spec)


class ShardedClipLoader:
    """Batches of this worker's clips as float ``(b, c, t, h, w)`` in [-0.5, 0.5], in a seeded order.

    ``position`` counts samples consumed; ``seek(position)`` restores it exactly. Each epoch is a fresh
    permutation (seed, epoch) of the shard, and each sample's crop and flip a function of (seed, sample), so a
    resumed run sees the same batches. ``decode`` turns a clip into uint8 ``(t, h, w, c)``; the next batch's
    clips are decoded by ``threads`` background threads while the current batch trains (0: on demand, in the
    caller). ``take_wait()`` returns the time ``next_batch`` spent waiting for decoded clips since the last call.
    """

    def __init__(
        self, refs: list[ClipRef], decode: Callable[[ClipRef], np.ndarray], batch_size: int, seed: int,
        size: tuple[int, int] | None = None, flip: bool = False, threads: int = 2,
    ) -> None:
        if not refs:
            raise ValueError("this worker's data shard is empty: add clips or use fewer workers")
        self.refs, self.decode, self.batch_size, self.seed = refs, decode, batch_size, seed
        self.size, self.flip = size, flip  # random crop to ``size`` (h, w) and random horizontal flips
        self.position = 0
        self.wait_s = 0.0
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=int))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clip-decode") if threads else None
        self._ahead: tuple[int, list[Future]] | None = None  # (position, one future per sample of that batch)

    def __len__(self) -> int:
        return len(self.refs)

    def _order(self, epoch: int) -> np.ndarray:
        if self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.refs)))
        return self._cached[1]

    def seek(self, position: int) -> None:
        self.position = int(position)

    def take_wait(self) -> float:
        wait, self.wait_s = self.wait_s, 0.0
        return wait

    def _augment(self, clip: np.ndarray, k: int) -> np.ndarray:
        """Sample ``k``'s random crop and flip: a pure function of (seed, k), so a resumed run sees the same."""
        if self.size is None and not self.flip:
            return clip
        rng = np.random.default_rng([self.seed, k, 1])
        (h, w), (full_h, full_w) = self.size or clip.shape[1:3], clip.shape[1:3]
        y, x = int(rng.integers(0, full_h - h + 1)), int(rng.integers(0, full_w - w + 1))
        clip = clip[:, y : y + h, x : x + w]  # (t, h, w, c)
        return clip[:, :, ::-1] if self.flip and rng.random() < 0.5 else clip

    def _sample(self, k: int, ref: ClipRef) -> np.ndarray:
        return self._augment(self.decode(ref), k)

    def _submit(self, position: int) -> list[Future]:
        """Start decoding the batch at ``position`` (the order is read here, in the caller's thread)."""
        assert self._pool is not None
        samples = []
        for k in range(position, position + self.batch_size):
            epoch, i = divmod(k, len(self.refs))
            samples.append(self._pool.submit(self._sample, k, self.refs[int(self._order(epoch)[i])]))
        return samples

    def next_batch(self) -> Tensor:
        started = time.perf_counter()
        ahead, self._ahead = self._ahead, None
        if self._pool is None:
            picks = []
            for k in range(self.position, self.position + self.batch_size):
                epoch, i = divmod(k, len(self.refs))
                picks.append(self._sample(k, self.refs[int(self._order(epoch)[i])]))
        else:
            if ahead is None or ahead[0] != self.position:  # first batch, or after a seek
                for future in ahead[1] if ahead else []:
                    future.cancel()
                ahead = (self.position, self._submit(self.position))
            picks = [future.result() for future in ahead[1]]
        self.position += self.batch_size
        if self._pool is not None:
            self._ahead = (self.position, self._submit(self.position))
        self.wait_s += time.perf_counter() - started
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(picks)))  # (b, t, h, w, c) uint8
        return batch.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # (b, c, t, h, w)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.decode, "close", None)
        if close is not None:
            close()


def worker_loader(
    dataset: DatasetConfig, *, frames: int, height: int, width: int, images: bool,
    batch_size: int, rank: int, world: int, seed: int, index: dataset_index.DatasetIndex | None = None,
) -> ShardedClipLoader:
    """This worker's loader: clips of ``frames`` frames (or single frames when ``images``), cut from
    ``index`` (default: the files of ``dataset.source``, probed now)."""
    if index is None:
        files = dataset_index.capped(dataset_files(dataset), dataset.max_clips)
        index = dataset_index.DatasetIndex(dataset_index.build(files, parallel=False))
    if images:
        refs = clips_from_index(index, 1, dataset.image_stride or frames, dataset.max_clips)
    else:
        refs = clips_from_index(index.videos(), frames, dataset.stride or frames, dataset.max_clips)
    if len(refs) < world:
        kind = "images" if images else f"{frames}-frame clips"
        raise ValueError(f"the dataset yields {len(refs)} {kind}, fewer than the {world} workers")
    scale = dataset.crop_scale
    decode = ClipDecoder(dataset.cache_dir, round(height * scale), round(width * scale), dataset.resize,
                         helper=dataset.decode_helper)
    size = (height, width) if scale != 1.0 else None
    return ShardedClipLoader(refs[rank::world], decode, batch_size, seed=seed * 1000 + rank, size=size,
                             flip=dataset.flip, threads=dataset.decode_threads)
