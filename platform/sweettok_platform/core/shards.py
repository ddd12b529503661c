"""Shards of items -> decoded clips on Ray Data: the decode stage every shard job (tokenize, eval) runs.

A job cuts its item list into shards (``corpus.plan_shards``); ``shard_rows`` makes them Ray Data rows and
``decode_stage`` adds the pool of CPU tasks that decodes each shard's files in sandboxed helper processes
(``core.decode``), under per-file time and memory limits, emitting parts of about ``WINDOW_GROUP`` clips
(``unpack_clips`` turns a part back into arrays). ``Progress`` prints the job's progress lines with an ETA.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from sweettok.storage import StorageUnavailableError
from sweettok_platform.core.corpus import clip_id
from sweettok_platform.core.decode import WINDOW_GROUP, Decoded, TimedDecoder
from sweettok_platform.core.faults import StorageRetry, decode_with_retries, error_reason
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.core.sources import Item


# The rows that travel between stages, typed (Arrow structs, not JSON strings):
ITEM = pa.struct([("uri", pa.string()), ("key", pa.string()), ("label", pa.int64()), ("label_name", pa.string())])
CLIP_META = pa.struct([("id", pa.string()), ("source", pa.string()), ("label", pa.int64()),
                       ("label_name", pa.string()), ("clip_start", pa.int64()), ("window", pa.int64()),
                       ("num_frames", pa.int64()), ("fps", pa.float64()), ("shape", pa.list_(pa.int64()))])
ERROR = pa.struct([("uri", pa.string()), ("source", pa.string()), ("reason", pa.string())])
SHARD_SCHEMA = pa.schema([("shard", pa.int64()), ("items", pa.list_(ITEM))])  # a shard to decode
PART_SCHEMA = pa.schema([  # one decoded part of a shard (``decode_shard``)
    ("shard", pa.int64()), ("part", pa.int64()),
    ("parts", pa.int64()), ("files", pa.int64()),  # set on a shard's last part only (0 on the others)
    ("meta", pa.list_(CLIP_META)), ("frames", pa.large_binary()), ("errors", pa.list_(ERROR)),
])


def shard_rows(shards: dict[int, list[Item]]) -> pa.Table:
    """The shards to decode, one row each: its number and its items (``SHARD_SCHEMA``)."""
    return pa.Table.from_pylist([{"shard": i, "items": [it.to_dict() for it in items]} for i, items in shards.items()],
                                schema=SHARD_SCHEMA)


def shard_dataset(shards: dict[int, list[Item]]) -> Any:
    """The shards as a Ray Dataset of one block per shard (so each decode task takes one shard)."""
    import ray

    table = shard_rows(shards)
    return ray.data.from_arrow([table.slice(i, 1) for i in range(table.num_rows)])


def unpack_clips(metas: list[dict[str, Any]], blob: bytes) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """A decoded part's (clip metas, frames blob) -> the metas and uint8 clips (t, h, w, c)."""
    clips, offset = [], 0
    for m in metas:
        size = int(np.prod(m["shape"]))
        clips.append(np.frombuffer(blob, np.uint8, size, offset).reshape(m["shape"]))
        offset += size
    return metas, clips


_DECODERS: dict[tuple, TimedDecoder] = {}  # one helper process per worker and clip spec


def decode_shard(batch: pa.Table, spec: dict[str, Any], timeout_s: float | None,
                 limits: dict[str, int | None] | None = None, retry: StorageRetry | None = None,
                 part_clips: int = WINDOW_GROUP) -> Iterator[pa.Table]:
    """Shard rows (``SHARD_SCHEMA``) -> decoded parts (``PART_SCHEMA``).

    A shard's clips leave in parts of about ``part_clips`` clips, as they are decoded (a long video's windows
    in groups, each group under the time limit: ``TimedDecoder.groups``), so a task holds one part's frames
    whatever the videos' length. The last part of a shard has ``parts`` = its number of parts and ``files``;
    the others have 0 in both. ``limits``: ``max_frame_pixels`` and ``memory_bytes`` of the decoder. Only
    permanent, file-specific failures become error rows; a storage fault is retried (``retry``) and, if it
    outlasts the retries, raised as ``StorageUnavailableError`` (the task's own retries come next).
    """
    limits = limits or {}
    key = (json.dumps(spec, sort_keys=True), timeout_s, json.dumps(limits, sort_keys=True))
    decoder = _DECODERS.get(key) or _DECODERS.setdefault(key, TimedDecoder(ClipSpec(**spec), timeout_s, **limits))
    retry = retry or StorageRetry()
    for shard, listed in zip(batch["shard"].to_pylist(), batch["items"].to_pylist()):
        items = [Item(**d) for d in listed]
        part = 0
        metas: list[dict] = []
        blobs: list[np.ndarray] = []  # views of the helper's answers: copied once, into the part's blob
        errors: list[dict] = []
        for item in items:
            for result in _file_groups(decoder, item, retry):
                if result.error is not None:
                    errors.append({"uri": item.uri, "source": item.key, "reason": error_reason(item, result.error)})
                for clip in result.clips:
                    frames = np.ascontiguousarray(clip.frames, dtype=np.uint8)  # (t, h, w, c)
                    metas.append({"id": clip_id(item.key, clip.start), "source": item.key, "label": item.label,
                                  "label_name": item.label_name, "clip_start": clip.start, "window": clip.window,
                                  "num_frames": frames.shape[0], "fps": clip.fps, "shape": list(frames.shape)})
                    blobs.append(frames)
                del result
                if len(metas) >= part_clips:
                    yield _part(shard, part, 0, 0, metas, blobs, errors)
                    part, metas, blobs, errors = part + 1, [], [], []
        yield _part(shard, part, part + 1, len(items), metas, blobs, errors)


def _part(shard: int, part: int, parts: int, files: int, metas: list[dict], blobs: list[np.ndarray],
          errors: list[dict]) -> pa.Table:
    fields = {"shard": [shard], "part": [part], "parts": [parts], "files": [files], "meta": [metas],
              "errors": [errors]}
    return pa.Table.from_arrays([_one_blob(blobs) if f.name == "frames" else pa.array(fields[f.name], f.type)
                                 for f in PART_SCHEMA], schema=PART_SCHEMA)


def _one_blob(clips: list[np.ndarray]) -> pa.Array:
    """uint8 clips -> a one-row ``large_binary`` array of their bytes, end to end: one copy into a buffer that
    Arrow then uses as it is (``tobytes`` + ``join`` + ``pa.array`` held three copies of a part's frames at
    once; the CPU is the same at small clips, ~0.06 ms per 9x64x64 clip, ``benchmarks/profile_tokenize.py``)."""
    blob = np.empty(sum(c.nbytes for c in clips), np.uint8)
    offset = 0
    for c in clips:
        blob[offset : offset + c.nbytes] = c.reshape(-1)
        offset += c.nbytes
    offsets = pa.py_buffer(np.array([0, blob.nbytes], np.int64))
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(blob)])


def _file_groups(decoder: TimedDecoder, item: Item, retry: StorageRetry) -> Iterator[Decoded]:
    """``decoder.groups(item)``, the first group retried while it fails on a storage fault (the file is
    fetched then); a file that gives no clip and no error (none can) is an error "no clips"."""
    first = decode_with_retries(lambda it: decoder.group(it, 0, WINDOW_GROUP), item, retry)
    if first.error is not None or first.windows is None:
        yield first
        return
    if not first.clips:
        yield Decoded(item=item, error="no clips")
        return
    yield first
    if first.windows > WINDOW_GROUP:
        for result in decoder.groups(item, WINDOW_GROUP, start=WINDOW_GROUP, windows=first.windows):
            yield result


# The decode helper's own peak (imports, decoder state, one window at source size): 341 / 356 / 438 MiB for
# 10 / 160 / 640 s of 720p video (benchmarks/long_video.py); rounded up for larger sources.
HELPER_BYTES = 512 << 20


def decode_memory(files_per_shard: int, spec: ClipSpec) -> int:
    """Bytes a decode task reserves: the clips it holds at most (a shard's clips, up to one part of
    ``2 * WINDOW_GROUP`` clips: the part being filled plus the group that fills it), three times over (the
    decoded clips, their bytes, the part's joined blob), plus the decode helper. Flat in video length."""
    clip = spec.frames * spec.height * spec.width * 3
    per_file = WINDOW_GROUP if spec.policy == "windows" else 1
    held = min(files_per_shard * per_file, 2 * WINDOW_GROUP)
    return 3 * held * clip + HELPER_BYTES

def decode_stage(ds: Any, spec: ClipSpec, *, files_per_shard: int, timeout_s: float | None,
                 limits: dict[str, int | None] | None = None, retry: StorageRetry | None = None,
                 concurrency: int | None = None, task_retries: int = 0, remote: dict[str, Any] | None = None) -> Any:
    """``ds`` (``shard_rows``) with the decode stage added: its own pool of CPU tasks. Each declares the memory a
    shard's frames need, which also keeps Ray Data from fusing it into the next stage's actors (fusion needs
    equal resources), where files would be decoded one after the other."""
    import ray

    with warnings.catch_warnings():
        # task retries have no named map_batches parameter in this Ray: they go as ``ray_remote_args``, which
        # warns that it goes away in Ray 2.64 (there the call fails loudly, an unknown keyword)
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(decode_shard, batch_size=1, batch_format="pyarrow",
                              compute=ray.data.TaskPoolStrategy(size=concurrency), num_cpus=1,
                              memory=decode_memory(files_per_shard, spec),
                              fn_kwargs={"spec": asdict(spec), "timeout_s": timeout_s, "limits": limits,
                                         "retry": retry},
                              max_retries=task_retries, retry_exceptions=[StorageUnavailableError], **(remote or {}))


def actor_resources(num_gpus: float | None, num_cpus: float) -> dict[str, float]:
    """An actor pool's resources: ``num_gpus`` GPUs (None: 1 when the cluster has GPUs), else ``num_cpus``."""
    import ray

    gpus = num_gpus if num_gpus is not None else (1 if ray.cluster_resources().get("GPU", 0) > 0 else 0)
    return {"num_gpus": gpus} if gpus else {"num_cpus": num_cpus}


class Progress:
    """Prints shards done, rows/s (one row per clip), files/s, errors and an ETA while a shard job runs
    (tokenize, eval): ``part`` for clips of a shard still in progress, ``update`` when a shard is done."""

    def __init__(self, total_shards: int, log: Callable[[str], None], every_s: float = 2.0) -> None:
        self.total, self.log, self.every_s = total_shards, log, every_s
        self.start = self.last = time.perf_counter()
        self.shards = self.files = self.clips = self.errors = 0
        self.staged: dict[int, int] = {}  # clips of shards whose parts are not all in yet (long videos)

    def part(self, shard: int, clips: int) -> None:
        self.staged[shard] = self.staged.get(shard, 0) + clips
        self._maybe_log()

    def update(self, stats: Any) -> None:
        """A finished shard (``ShardStats``: shard, files, clips, errors)."""
        self.shards += 1
        self.files += stats.files
        self.clips += stats.clips
        self.staged.pop(stats.shard, None)
        self.errors += stats.errors
        self._maybe_log()

    def _maybe_log(self) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.shards == self.total:
            self.last = now
            self.log(self.line())

    def line(self) -> str:
        dt = max(time.perf_counter() - self.start, 1e-9)
        pending = sum(self.staged.values())
        staged = f" (+{pending} in unfinished shards)" if pending else ""
        left = self.total - self.shards
        eta = f"  ETA {format_eta(left * dt / self.shards)}" if self.shards and left else ""
        return (f"shards {self.shards}/{self.total}  rows {self.clips}{staged} ({(self.clips + pending) / dt:.1f} "
                f"rows/s, one row per clip)  files {self.files} ({self.files / dt:.1f} files/s)  errors {self.errors}  "
                f"{dt:.1f}s{eta}")


def format_eta(seconds: float) -> str:
    """Seconds -> '42s', '3m05s' or '2h07m' (the remaining shards at the rate of the finished ones)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
