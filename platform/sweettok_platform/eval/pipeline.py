"""The eval job on Ray Data: shards of files -> decode (the tokenize CPU tasks, same time limits and errors;
a shard leaves in parts when long videos give many clips) -> an actor pool of ``ClipScorer`` -> one result
row per part, merged by the driver."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Iterator

import pyarrow as pa

from sweettok import storage
from sweettok_platform.core.shards import actor_resources, decode_shard, decode_stage, shard_rows, unpack_clips
from sweettok_platform.core.watchdog import StallWatchdog, cluster_cpus, describe_waits, plan_actor_pool
from sweettok_platform.eval.scorer import ClipScorer, ScorerConfig
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.media import ClipSpec


def score_decoded(scorer: ClipScorer, row: dict[str, Any]) -> dict[str, Any]:
    """One decoded part of a shard -> its result row: shard, part, parts (set on a shard's last part), files,
    clips (JSON records), errors (JSON), partial."""
    metas, clips = unpack_clips(row["meta"], row["frames"])
    records, partial = scorer.score(clips)
    out = [{"key": m["source"], "clip_start": m["clip_start"], "frames": m["num_frames"], **r} for m, r in zip(metas, records)]
    return {"shard": row["shard"], "part": row["part"], "parts": row["parts"], "files": row["files"],
            "clips": json.dumps(out), "errors": row["errors"], "partial": partial.to_bytes()}


class ShardScorer:
    """The actor: loads the tokenizer and metric networks once, scores decoded shards."""

    def __init__(self, scorer: dict[str, Any]) -> None:
        self.scorer = ClipScorer(ScorerConfig(**scorer))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [score_decoded(self.scorer, row) for row in batch.to_pylist()]
        return pa.table({**{k: pa.array([r[k] for r in rows], pa.int64()) for k in ("shard", "part", "parts", "files")},
                         "clips": [r["clips"] for r in rows], "errors": [r["errors"] for r in rows],
                         "partial": pa.array([r["partial"] for r in rows], pa.large_binary())})


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
    rows = shard_rows(shards)
    ds = decode_stage(ray.data.from_items(rows, override_num_blocks=len(rows)), spec, files_per_shard=files_per_shard,
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
        batch = pa.Table.from_pylist(shard_rows({i: items}))
        for part in decode_shard(batch, asdict(spec), timeout_s):
            yield score_decoded(model, part.to_pylist()[0])
