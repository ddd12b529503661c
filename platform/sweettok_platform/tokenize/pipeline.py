"""Bulk tokenization with Ray Data: list -> decode (CPU tasks) -> encode and write Parquet (actor pool).

The unit of work is an input *shard* (``files_per_shard`` consecutive files of the sorted listing). A shard
travels through the pipeline as one row, so it is decoded, encoded and written together into one file
named after its index (``data/part-00007.parquet``). A rerun lists the finished shards and skips them:
no row twice, no row missing. Files that give no clips land in ``errors/`` and the job goes on.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from sweettok import storage
from sweettok.storage import StorageUnavailableError
from sweettok.typed import build
from sweettok_platform.core.corpus import (ROW_SCHEMA, STAGING_DIR, CorpusCard, ShardStats, check_plan, clear_staged,
                                           done_shards, items_fingerprint, join_staged, plan_shards,
                                           read_shard_stats, shards_with_storage_errors, stage_part, write_shard)
from sweettok_platform.core.faults import StorageRetry, storage_failure
from sweettok_platform.core.shards import ERROR, Progress, actor_resources, decode_stage, shard_dataset, unpack_clips
from sweettok_platform.tokenize.overwrite import clear_corpus
from sweettok_platform.core.sources import Item, SourceConfig, list_items
from sweettok_platform.core.tokenizer import EncodeConfig, TokenizerInfo, describe_tokenizer, load_tokenizer
from sweettok_platform.core.watchdog import StallWatchdog, cluster_cpus, describe_waits, plan_actor_pool
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.core.bundles import durable_bundle_uri



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
    decode_reserve_cpus: float = 1.0  # CPUs the encode pool leaves to decode tasks, also after losing a node
    stall_s: float = 120.0  # no shard or part finished for this long: one line naming what waits
    stall_fail_s: float | None = 900.0  # ... for this long: stop the job naming the cause (None: wait for ever)

    def __post_init__(self) -> None:
        if self.decode_reserve_cpus < 0:
            raise ValueError(f"decode_reserve_cpus must be >= 0, got {self.decode_reserve_cpus}")
        if self.stall_s <= 0:
            raise ValueError(f"stall_s must be > 0, got {self.stall_s}")
        if self.stall_fail_s is not None and self.stall_fail_s < self.stall_s:
            raise ValueError(f"stall_fail_s ({self.stall_fail_s}) must be >= stall_s ({self.stall_s}), or null")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenizeJobConfig":
        """Types checked and coerced, unknown keys refused, errors naming the dotted key (``sweettok.typed``)."""
        if not data.get("output"):
            raise ValueError("output is empty: give the corpus directory to write (local or s3://)")
        return build(cls, data)


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
        """Decoded parts -> per part: the shard's stats when the part is the whole shard (written here), else
        the part's stats with ``staged`` set (rows staged; the driver joins the parts: ``join_staged``)."""
        out = []
        for row in batch.to_pylist():
            metas, clips = unpack_clips(row["meta"], row["frames"])
            spatial, temporal = self.encode_clips(clips)
            rows = pa.Table.from_pylist(
                [{**{k: v for k, v in m.items() if k != "shape"}, "spatial": s, "temporal": t,
                  "tokenizer": self.tokenizer} for m, s, t in zip(metas, spatial, temporal)], schema=ROW_SCHEMA)
            errors = row["errors"]
            stats = ShardStats(shard=row["shard"], files=row["files"], clips=rows.num_rows, errors=len(errors))
            whole = row["part"] == 0 and row["parts"] == 1
            if whole:
                write_shard(self.output, stats, rows, errors)
            else:
                stage_part(self.output, row["shard"], row["part"], rows)
            out.append({**asdict(stats), "part": row["part"], "parts": row["parts"], "staged": not whole,
                        "staged_errors": [] if whole else errors})
        return pa.Table.from_pylist(out, schema=ENCODED_SCHEMA)


# what the encode actors return per part: the shard's stats, or the part's when it was staged (the driver joins)
ENCODED_SCHEMA = pa.schema([("shard", pa.int64()), ("files", pa.int64()), ("clips", pa.int64()), ("errors", pa.int64()),
                            ("part", pa.int64()), ("parts", pa.int64()), ("staged", pa.bool_()),
                            ("staged_errors", pa.list_(ERROR))])


class ShardParts:
    """The driver's side of shards that arrive in several parts: collects each part's stats and joins the
    shard once all its parts are staged (``add`` returns the joined shard's stats then, else None)."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.pending: dict[int, dict[str, Any]] = {}

    def add(self, row: dict[str, Any]) -> ShardStats | None:
        if not row["staged"]:
            return ShardStats(shard=row["shard"], files=row["files"], clips=row["clips"], errors=row["errors"])
        # by part: a decode task that Ray retried sends its first parts again (same rows, same staged file)
        p = self.pending.setdefault(row["shard"], {"parts": 0, "files": 0, "errors": {}})
        p["errors"][row["part"]] = row["staged_errors"]
        if row["parts"]:  # the last part
            p["parts"], p["files"] = row["parts"], row["files"]
        if not p["parts"] or len(p["errors"]) < p["parts"]:
            return None
        del self.pending[row["shard"]]
        errors = [e for part in sorted(p["errors"]) for e in p["errors"][part]]
        return join_staged(self.output, row["shard"], p["parts"], p["files"], errors)


# ---- the driver -------------------------------------------------------------------------------------
_log = get_logger("tokenize").info
_warn = get_logger("tokenize").warning


def build_dataset(config: TokenizeJobConfig, shards: dict[int, list[Item]], spec: ClipSpec, info: TokenizerInfo,
                  actors: int | None = None):
    """The Ray Dataset of the job: one row per shard to do; its rows are the written shards' stats.
    ``actors``: the encode pool's size (default ``encode.concurrency``; see ``watchdog.plan_actor_pool``)."""
    import ray

    env = storage.storage_env()
    remote = {"runtime_env": {"env_vars": env}} if env else {}  # S3 settings for the workers
    ds = decode_stage(shard_dataset(shards), spec,
                      files_per_shard=config.files_per_shard, timeout_s=config.decode_timeout_s,
                      limits={"max_frame_pixels": config.max_frame_pixels, "memory_bytes": config.decoder_memory_bytes},
                      retry=StorageRetry(attempts=config.storage_retries, backoff_s=config.storage_backoff_s),
                      concurrency=config.decode_concurrency, task_retries=config.task_retries, remote=remote)
    return ds.map_batches(ShardEncoder, batch_size=1, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=actors or config.encode.concurrency),
                          fn_constructor_kwargs={"encode": asdict(config.encode), "tokenizer": info.hash,
                                                 "output": config.output},
                          **actor_resources(config.encode.num_gpus, config.encode.num_cpus), **remote)


def tokenize_dataset(config: TokenizeJobConfig, log: Callable[[str], None] = _log) -> CorpusCard:
    """Tokenize a dataset into a Parquet corpus at ``config.output``, resuming a partial one; returns its card."""
    start = time.perf_counter()
    info = describe_tokenizer(config.encode)
    patch = info.config.patch
    spec = replace(config.clips, frames=patch.frames, height=patch.height, width=patch.width)
    items = list_items(config.source)
    if not items:
        raise ValueError(f"{config.source.root}: the {config.source.kind} source lists no files")
    if config.overwrite:  # only a corpus this tool wrote, only its own files, never an input (tokenize/overwrite.py)
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
    clear_staged(config.output, set(done))  # parts an interrupted run staged for shards written since
    todo = {i: shard for i, shard in enumerate(shards) if i not in done}
    log(f"{len(items)} files in {len(shards)} shards; {len(done)} done before, {len(todo)} to do "
        f"-> {config.output}")
    if todo:
        import ray

        if not ray.is_initialized():
            ray.init(address=config.ray_address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = config.progress
        gpus = config.encode.num_gpus if config.encode.num_gpus is not None else ray.cluster_resources().get("GPU", 0)
        actors = config.encode.concurrency if gpus else plan_actor_pool(
            config.encode.concurrency, config.encode.num_cpus, config.decode_reserve_cpus, "encode.concurrency", log)
        progress = Progress(len(todo), log)
        parts = ShardParts(config.output)
        nodes = cluster_cpus()
        watchdog = StallWatchdog(config.stall_s, config.stall_fail_s, lambda: describe_waits(
            len(todo) - progress.shards, "shards", len(nodes), sum(nodes)), log, _warn)
        try:
            with watchdog:
                for row in build_dataset(config, todo, spec, info, actors).iter_rows():
                    watchdog.progress()
                    shard_stats = parts.add(row)
                    if shard_stats is None:
                        progress.part(row["shard"], row["clips"])
                        continue
                    stats[shard_stats.shard] = shard_stats
                    progress.update(shard_stats)
        except KeyboardInterrupt as e:
            watchdog.check(e)  # the watchdog's stop: JobStalledError naming the cause
            raise
        except Exception as e:
            cause = storage_failure(e)
            if cause is None:
                raise
            what = "stopping" if "output storage fault" in str(cause) else "input storage unavailable, stopping"
            raise StorageUnavailableError(f"{what}: {cause}; {len(stats) - len(done)} "
                                          "shards were written, rerun to resume") from e
    seconds = time.perf_counter() - start
    new_clips = sum(stats[i].clips for i in todo if i in stats)
    card = CorpusCard(
        output=config.output, tokenizer=info.hash, preset=config.encode.preset,
        bundle=durable_bundle_uri(config.encode.bundle) if config.encode.bundle else None,  # never a temp path
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
    if card.complete:
        storage.delete(storage.join(config.output, STAGING_DIR))  # parts a lost task staged again after the join
    card.save()
    log(f"done: {card.clips} rows from {card.files_ok}/{card.files} files, {card.files_failed} errors, "
        f"{card.shards_done}/{card.shards} shards in {seconds:.1f}s -> {config.output}")
    return card
