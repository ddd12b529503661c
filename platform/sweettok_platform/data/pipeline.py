"""Bulk tokenization with Ray Data: list -> decode (CPU tasks) -> encode and write Parquet (actor pool).

The unit of work is an input *shard* (``files_per_shard`` consecutive files of the sorted listing). A shard
travels through the pipeline as one row, so it is decoded, encoded and written together into one file
named after its index (``data/part-00007.parquet``). A rerun lists the finished shards and skips them:
no row twice, no row missing. Files that give no clips land in ``errors/`` and the job goes on.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from sweettok import storage
from sweettok.typed import build
from sweettok.storage import StorageUnavailableError
from sweettok_platform.data.corpus import (ROW_SCHEMA, CorpusCard, ShardStats, check_plan, clip_id, done_shards,
                                           items_fingerprint, plan_shards, read_shard_stats,
                                           shards_with_storage_errors, write_shard)
from sweettok_platform.data.decode import TimedDecoder
from sweettok_platform.data.faults import StorageRetry, decode_with_retries, error_reason, storage_failure
from sweettok_platform.data.overwrite import clear_corpus
from sweettok_platform.data.sources import Item, SourceConfig, list_items
from sweettok_platform.data.tokenizer import EncodeConfig, TokenizerInfo, describe_tokenizer, load_tokenizer
from sweettok_platform.log import get_logger
from sweettok_platform.media import ClipSpec



@dataclass(kw_only=True)
class TokenizeJobConfig:
    """One tokenization job. ``clips`` frames/height/width are taken from the tokenizer's geometry."""

    source: SourceConfig
    output: str
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    clips: ClipSpec = field(default_factory=ClipSpec)
    files_per_shard: int = 16
    decode_timeout_s: float | None = 120.0  # per file; None decodes in the task's own process
    max_frame_pixels: int | None = 4096 * 2160  # larger source frames are refused from the header (error row)
    decoder_memory_bytes: int | None = 4 * 2**30  # cap of each decode helper's data segment (None: no cap)
    decode_concurrency: int | None = None  # most decode tasks at once (None: as many as CPUs allow)
    overwrite: bool = False  # delete the output first instead of resuming it (only a corpus this tool wrote)
    retry_errors: bool = False  # redo the shards whose recorded errors were storage faults
    storage_retries: int = 4  # re-reads of a file after a storage fault, backoff doubling (after the SDK's)
    storage_backoff_s: float = 1.0
    task_retries: int = 2  # then Ray retries the whole decode task this often before the job stops
    progress: bool = True
    ray_address: str | None = None  # None: RAY_ADDRESS or a local cluster

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenizeJobConfig":
        """Types checked and coerced, unknown keys refused, errors naming the dotted key (``sweettok.typed``)."""
        if not data.get("output"):
            raise ValueError("output is empty: give the corpus directory to write (local or s3://)")
        return build(cls, data)


# ---- stage 1: decode a shard's files (CPU task) --------------------------------------------------
_DECODERS: dict[tuple, TimedDecoder] = {}  # one helper process per worker and clip spec


def decode_shard(batch: pa.Table, spec: dict[str, Any], timeout_s: float | None,
                 limits: dict[str, int | None] | None = None, retry: StorageRetry | None = None) -> pa.Table:
    """Shard rows (shard, items JSON) -> (shard, files, meta JSON, frames blob, errors JSON).

    ``limits``: ``max_frame_pixels`` and ``memory_bytes`` of the decoder (``TimedDecoder``). Only permanent,
    file-specific failures become error rows; a storage fault is retried (``retry``) and, if it outlasts the
    retries, raised as ``StorageUnavailableError`` (the task's own retries come next).
    """
    limits = limits or {}
    key = (json.dumps(spec, sort_keys=True), timeout_s, json.dumps(limits, sort_keys=True))
    decoder = _DECODERS.get(key) or _DECODERS.setdefault(key, TimedDecoder(ClipSpec(**spec), timeout_s, **limits))
    out: dict[str, list] = {"shard": [], "files": [], "meta": [], "frames": [], "errors": []}
    for shard, items_json in zip(batch["shard"].to_pylist(), batch["items"].to_pylist()):
        items = [Item(**d) for d in json.loads(items_json)]
        metas, blobs, errors = [], [], []
        for item in items:
            result = decode_with_retries(decoder, item, retry or StorageRetry())
            if result.error is not None or not result.clips:
                errors.append({"uri": item.uri, "source": item.key, "reason": error_reason(item, result.error)})
                continue
            for clip in result.clips:
                frames = np.ascontiguousarray(clip.frames, dtype=np.uint8)  # (t, h, w, c)
                metas.append({"id": clip_id(item.key, clip.start), "source": item.key, "label": item.label,
                              "label_name": item.label_name, "clip_start": clip.start, "window": clip.window,
                              "num_frames": frames.shape[0], "fps": clip.fps, "shape": list(frames.shape)})
                blobs.append(frames.tobytes())
        for name, value in (("shard", shard), ("files", len(items)), ("meta", json.dumps(metas)),
                            ("frames", b"".join(blobs)), ("errors", json.dumps(errors))):
            out[name].append(value)
    return pa.table({"shard": pa.array(out["shard"], pa.int64()), "files": pa.array(out["files"], pa.int64()),
                     "meta": out["meta"], "frames": pa.array(out["frames"], pa.large_binary()),
                     "errors": out["errors"]})


# ---- stage 2: encode a shard's clips and write them (actor pool; one model per actor) --------------
class ShardEncoder:
    """Decoded shards -> Parquet files at ``output``; returns each shard's stats. GPU when present.

    The actor writes its shards itself: a shard's token rows are small (a few kB per clip), and a separate
    writer stage of zero-CPU tasks made Ray start (and, once idle, kill) a worker process per write, which
    cost more CPU than the writes.
    """

    def __init__(self, encode: dict[str, Any], tokenizer: str, output: str) -> None:
        import torch

        config = EncodeConfig(**encode)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(max(1, int(config.num_cpus)))
        self.model = load_tokenizer(config, expected_hash=tokenizer).to(self.device)  # verified vs plan.json
        self.batch_size = config.batch_size
        self.tokenizer = tokenizer
        self.output = output

    def encode_clips(self, clips: list[np.ndarray]) -> tuple[list[list[int]], list[list[int]]]:
        """uint8 clips (t, h, w, c) -> per-clip spatial and temporal ids; clips are batched by shape."""
        import torch

        from sweettok import from_uint8

        spatial: list = [None] * len(clips)
        temporal: list = [None] * len(clips)
        groups: dict[tuple, list[int]] = {}
        for i, clip in enumerate(clips):
            groups.setdefault(clip.shape, []).append(i)
        n_s = self.model.num_spatial
        for indices in groups.values():
            for k in range(0, len(indices), self.batch_size):
                chunk = indices[k : k + self.batch_size]
                x = torch.from_numpy(np.stack([clips[i] for i in chunk])).to(self.device)  # (b, t, h, w, c) uint8
                ids = self.model.encode(from_uint8(x)).cpu().numpy().astype(np.int32)  # (b, N_s [+ N_t])
                for i, row in zip(chunk, ids):
                    spatial[i], temporal[i] = row[:n_s].tolist(), row[n_s:].tolist()
        return spatial, temporal

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for shard, files, meta_json, blob, errors_json in zip(
                batch["shard"].to_pylist(), batch["files"].to_pylist(), batch["meta"].to_pylist(),
                batch["frames"].to_pylist(), batch["errors"].to_pylist()):
            metas = json.loads(meta_json)
            clips, offset = [], 0
            for m in metas:
                size = int(np.prod(m["shape"]))
                clips.append(np.frombuffer(blob, np.uint8, size, offset).reshape(m["shape"]))
                offset += size
            spatial, temporal = self.encode_clips(clips)
            rows = [{**{k: v for k, v in m.items() if k != "shape"}, "spatial": s, "temporal": t,
                     "tokenizer": self.tokenizer} for m, s, t in zip(metas, spatial, temporal)]
            errors = json.loads(errors_json)
            stats = ShardStats(shard=shard, files=files, clips=len(rows), errors=len(errors))
            write_shard(self.output, stats, pa.Table.from_pylist(rows, schema=ROW_SCHEMA), errors)
            out.append(asdict(stats))
        return pa.Table.from_pylist(out)


# ---- the driver -------------------------------------------------------------------------------------
class Progress:
    """Prints shards done, clips/s, files/s and errors while the job runs."""

    def __init__(self, total_shards: int, log: Callable[[str], None], every_s: float = 2.0) -> None:
        self.total, self.log, self.every_s = total_shards, log, every_s
        self.start = self.last = time.perf_counter()
        self.shards = self.files = self.clips = self.errors = 0

    def update(self, stats: ShardStats) -> None:
        self.shards += 1
        self.files += stats.files
        self.clips += stats.clips
        self.errors += stats.errors
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.shards == self.total:
            self.last = now
            self.log(self.line())

    def line(self) -> str:
        dt = max(time.perf_counter() - self.start, 1e-9)
        return (f"shards {self.shards}/{self.total}  rows {self.clips} ({self.clips / dt:.1f} rows/s, "
                f"one row per clip)  files {self.files} ({self.files / dt:.1f} files/s)  errors {self.errors}  "
                f"{dt:.1f}s")


_log = get_logger("tokenize").info


def decode_memory(config: TokenizeJobConfig, spec: ClipSpec) -> int:
    """Bytes a decode task should reserve: its shard's clips (one per file, times 4 for windows) twice over,
    plus room for the decoder."""
    clip = spec.frames * spec.height * spec.width * 3
    per_file = clip * (4 if spec.policy == "windows" else 1)
    return 2 * config.files_per_shard * per_file + (512 << 20)


def build_dataset(config: TokenizeJobConfig, shards: dict[int, list[Item]], spec: ClipSpec, info: TokenizerInfo):
    """The Ray Dataset of the job: one row per shard to do; its rows are the written shards' stats."""
    import ray

    env = storage.storage_env()
    remote = {"runtime_env": {"env_vars": env}} if env else {}  # S3 settings for the workers
    rows = [{"shard": i, "items": json.dumps([it.to_dict() for it in items])} for i, items in shards.items()]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # Decode is its own pool of CPU tasks. It declares the memory a shard's frames need, which also keeps
    # Ray Data from fusing it into the encode actors (fusion needs equal resources), where files would be
    # decoded one after the other.
    decode_pool = ray.data.TaskPoolStrategy(size=config.decode_concurrency)
    ds = ds.map_batches(decode_shard, batch_size=1, batch_format="pyarrow", compute=decode_pool, num_cpus=1,
                        memory=decode_memory(config, spec),
                        fn_kwargs={"spec": asdict(spec), "timeout_s": config.decode_timeout_s,
                                   "limits": {"max_frame_pixels": config.max_frame_pixels,
                                              "memory_bytes": config.decoder_memory_bytes},
                                   "retry": StorageRetry(attempts=config.storage_retries,
                                                         backoff_s=config.storage_backoff_s)},
                        max_retries=config.task_retries, retry_exceptions=[StorageUnavailableError], **remote)
    gpus = config.encode.num_gpus
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    resources = {"num_gpus": gpus} if gpus else {"num_cpus": config.encode.num_cpus}
    return ds.map_batches(ShardEncoder, batch_size=1, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=config.encode.concurrency),
                          fn_constructor_kwargs={"encode": asdict(config.encode), "tokenizer": info.hash,
                                                 "output": config.output},
                          **resources, **remote)


def tokenize_dataset(config: TokenizeJobConfig, log: Callable[[str], None] = _log) -> CorpusCard:
    """Tokenize a dataset into a Parquet corpus at ``config.output``, resuming a partial one; returns its card."""
    start = time.perf_counter()
    info = describe_tokenizer(config.encode)
    patch = info.config.patch
    spec = replace(config.clips, frames=patch.frames, height=patch.height, width=patch.width)
    items = list_items(config.source)
    if not items:
        raise ValueError(f"{config.source.root}: the {config.source.kind} source lists no files")
    if config.overwrite:  # only a corpus this tool wrote, only its own files, never an input (data/overwrite.py)
        src = config.source
        inputs = [src.root, src.splits_dir, src.annotations, src.synset_mapping, *(it.uri for it in items)]
        clear_corpus(config.output, [u for u in inputs if u])
    shards = plan_shards(items, config.files_per_shard)
    check_plan(config.output, {"items_sha256": items_fingerprint(items), "files": len(items),
                               "files_per_shard": config.files_per_shard, "shards": len(shards),
                               "tokenizer": info.hash, "clips": asdict(spec)})
    done = done_shards(config.output)
    if config.retry_errors:
        redo = shards_with_storage_errors(config.output, done)
        log(f"--retry-errors: {len(redo)} shards recorded storage faults; redoing them")
        for shard in redo:
            storage.delete(done.pop(shard))  # not done any more: a crash from here on redoes it again
    with ThreadPoolExecutor(16) as pool:
        stats = dict(zip(done, pool.map(read_shard_stats, done.values())))
    todo = {i: shard for i, shard in enumerate(shards) if i not in done}
    log(f"{len(items)} files in {len(shards)} shards; {len(done)} done before, {len(todo)} to do "
        f"-> {config.output}")
    if todo:
        import ray

        if not ray.is_initialized():
            ray.init(address=config.ray_address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = config.progress
        progress = Progress(len(todo), log)
        try:
            for row in build_dataset(config, todo, spec, info).iter_rows():
                shard_stats = ShardStats(**row)
                stats[shard_stats.shard] = shard_stats
                progress.update(shard_stats)
        except Exception as e:
            cause = storage_failure(e)
            if cause is None:
                raise
            raise StorageUnavailableError(f"input storage unavailable, stopping: {cause}; {len(stats) - len(done)} "
                                          "shards were written, rerun to resume") from e
    seconds = time.perf_counter() - start
    new_clips = sum(stats[i].clips for i in todo if i in stats)
    card = CorpusCard(
        output=config.output, tokenizer=info.hash, bundle=config.encode.bundle, preset=config.encode.preset,
        seed=config.encode.seed, quantizer=info.config.quantizer.kind, words_file=info.words_file,
        spatial_tokens=info.config.spatial_queries, temporal_tokens=info.config.temporal_queries,
        spatial_codebook_size=info.config.quantizer.spatial_size,
        temporal_codebook_size=info.config.quantizer.temporal_size,
        label_names={it.label: it.label_name for it in sorted(items, key=lambda it: it.label) if it.label >= 0},
        source=asdict(config.source), clips_spec=asdict(spec), shards=len(shards), shards_done=len(stats),
        shards_skipped=len(done), files=sum(s.files for s in stats.values()),
        files_failed=sum(s.errors for s in stats.values()), clips=sum(s.clips for s in stats.values()),
        seconds=round(seconds, 3), clips_per_s=round(new_clips / seconds, 3) if seconds else 0.0,
    )
    card.files_ok = card.files - card.files_failed
    card.save()
    log(f"done: {card.clips} rows from {card.files_ok}/{card.files} files, {card.files_failed} errors, "
        f"{card.shards_done}/{card.shards} shards in {seconds:.1f}s -> {config.output}")
    return card
