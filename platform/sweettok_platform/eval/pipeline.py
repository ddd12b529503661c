"""The eval job on Ray Data: shards of files -> decode (the tokenize CPU tasks, same time limits and errors;
a shard leaves in parts when long videos give many clips) -> an actor pool of ``ClipScorer`` -> one result
row per part, merged by the driver."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

import pyarrow as pa

from sweettok import storage
from sweettok_platform.core.shards import (ERROR, actor_resources, decode_shard, decode_stage, shard_dataset, shard_rows,
                                           unpack_clips)
from sweettok_platform.core.watchdog import StallWatchdog, cluster_cpus, describe_waits, plan_actor_pool
from sweettok_platform.eval.metrics import METRICS
from sweettok_platform.eval.scorer import ClipScorer, ScorerConfig
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.media import ClipSpec


# a scored part: per-clip records (the weighted metrics' values null where not computed), errors, partial sums
CLIP_RESULT = pa.struct([("key", pa.string()), ("clip_start", pa.int64()), ("frames", pa.int64()),
                         *[(name, pa.float64()) for name in ("psnr", "ssim", "floor_psnr", "floor_ssim", *METRICS)]])
RESULT_SCHEMA = pa.schema([("shard", pa.int64()), ("part", pa.int64()), ("parts", pa.int64()), ("files", pa.int64()),
                           ("clips", pa.list_(CLIP_RESULT)), ("errors", pa.list_(ERROR)),
                           ("partial", pa.large_binary())])


def score_decoded(scorer: ClipScorer, row: dict[str, Any]) -> dict[str, Any]:
    """One decoded part of a shard -> its result row (``RESULT_SCHEMA``)."""
    metas, clips = unpack_clips(row["meta"], row["frames"])
    records, partial = scorer.score(clips)
    out = [{"key": m["source"], "clip_start": m["clip_start"], "frames": m["num_frames"], **r} for m, r in zip(metas, records)]
    return {"shard": row["shard"], "part": row["part"], "parts": row["parts"], "files": row["files"],
            "clips": out, "errors": row["errors"], "partial": partial.to_bytes()}


class ShardScorer:
    """The actor: loads the tokenizer and metric networks once, scores decoded shards."""

    def __init__(self, scorer: dict[str, Any]) -> None:
        self.scorer = ClipScorer(ScorerConfig(**scorer))

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([score_decoded(self.scorer, row) for row in batch.to_pylist()],
                                    schema=RESULT_SCHEMA)


STALL_S, STALL_FAIL_S = 120.0, 900.0  # as the tokenize job's defaults (core/watchdog.py)


def run_ray(shards: dict[int, list], spec: ClipSpec, scorer: ScorerConfig, *, actors: int, num_gpus: float | None,
            num_cpus: float, files_per_shard: int, timeout_s: float | None, decode_concurrency: int | None,
            progress: bool, ray_address: str | None) -> Iterator[dict[str, Any]]:
    """Result rows of the shards, in completion order."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    env = storage.storage_env()
    remote = {"runtime_env": {"env_vars": env}} if env else {}
    ds = decode_stage(shard_dataset(shards), spec, files_per_shard=files_per_shard,
                      timeout_s=timeout_s, concurrency=decode_concurrency, remote=remote)
    resources = actor_resources(num_gpus, num_cpus)
    log = get_logger("eval")
    if "num_cpus" in resources:  # leave decode tasks a CPU, also after a node is lost (core/watchdog.py)
        actors = plan_actor_pool(actors, num_cpus, 1.0, "actors", log.info)
    ds = ds.map_batches(ShardScorer, batch_size=1, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=actors),
                        fn_constructor_kwargs={"scorer": asdict(scorer)}, **resources, **remote)
    nodes, done = cluster_cpus(), 0
    watchdog = StallWatchdog(STALL_S, STALL_FAIL_S, lambda: describe_waits(len(shards) - done, "shards", len(nodes),
                                                                          sum(nodes)), log.info, log.warning)
    try:
        with watchdog:
            for row in ds.iter_rows():
                watchdog.progress()
                done += 1
                yield row
    except KeyboardInterrupt as e:
        watchdog.check(e)
        raise


def run_local(shards: dict[int, list], spec: ClipSpec, scorer: ScorerConfig,
              timeout_s: float | None) -> Iterator[dict[str, Any]]:
    """The same stages in this process, one shard after the other (no Ray)."""
    model = ClipScorer(scorer)
    for i, items in shards.items():
        batch = shard_rows({i: items})
        for part in decode_shard(batch, asdict(spec), timeout_s):
            yield score_decoded(model, part.to_pylist()[0])
