"""``evaluate``: score a tokenizer on a dataset and write ``eval.json`` and ``card.md``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, replace
from functools import reduce
from typing import Any, Callable

from sweettok import storage
from sweettok.metrics import frechet_distance
from sweettok_platform.core.config import RESOLVED_CONFIG, write_resolved
from sweettok_platform.core.corpus import ShardStats, plan_shards
from sweettok_platform.core.shards import Progress
from sweettok_platform.core.sources import list_items
from sweettok_platform.core.tokenizer import EncodeConfig, describe_tokenizer
from sweettok_platform.eval.config import EvalConfig
from sweettok_platform.eval.conventions import CONVENTIONS, check_weights
from sweettok_platform.eval.metrics import METRICS
from sweettok_platform.eval.pipeline import run_local, run_ray
from sweettok_platform.eval.scorer import Partial, ScorerConfig, file_sha256
from sweettok_platform.core.log import get_logger

SCHEMA_VERSION = 1


_log = get_logger("eval").info


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6) if values else float("nan")


def _whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def evaluate(config: EvalConfig, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Score ``config``'s tokenizer on its source; writes ``eval.json`` + ``card.md`` to ``config.output`` and
    returns the ``eval.json`` dict (means over clips, per-clip rows, conventions, weight hashes, errors)."""
    start = time.perf_counter()
    config.check()
    encode = EncodeConfig(bundle=config.bundle, preset=config.preset, seed=config.seed)
    info = describe_tokenizer(encode)
    patch = info.config.patch
    spec = replace(config.clips, frames=patch.frames, height=patch.height, width=patch.width)
    check_weights(config, spec.frames)  # a wrong or missing weights file stops the job here, before any decoding
    items = list_items(config.source)
    if not items:
        raise ValueError(f"{config.source.root}: the {config.source.kind} source lists no files")
    shards = dict(enumerate(plan_shards(items, config.files_per_shard)))
    scorer = ScorerConfig(bundle=config.bundle, preset=config.preset, seed=config.seed,
                          teacher_only=config.teacher_only, batch_size=config.batch_size,
                          weights=config.weights,
                          threads=max(1, int(config.num_cpus)))
    log(f"{len(items)} files in {len(shards)} shards, {spec.frames}x{spec.height}x{spec.width} clips "
        f"({spec.policy}), {'in process' if config.in_process else f'{config.actors} actors'} -> {config.output}")
    if config.in_process:
        rows = run_local(shards, spec, scorer, config.decode_timeout_s)
    else:
        rows = run_ray(shards, spec, scorer, actors=config.actors, num_gpus=config.num_gpus, num_cpus=config.num_cpus,
                       files_per_shard=config.files_per_shard, timeout_s=config.decode_timeout_s,
                       decode_concurrency=config.decode_concurrency, progress=config.progress,
                       ray_address=config.ray_address)
    progress = Progress(len(shards), log)
    staged: dict[int, tuple[int, int]] = {}  # clips and errors of shards whose parts are not all in
    results = {}
    for row in rows:
        results[row["shard"], row["part"]] = row  # a part Ray sent twice (a retried decode task) counts once
        clips, errors = len(row["clips"]), len(row["errors"])
        before = staged.pop(row["shard"], (0, 0))
        if row["parts"] > 0:  # the shard's last part
            progress.update(ShardStats(shard=row["shard"], files=row["files"], clips=before[0] + clips,
                                       errors=before[1] + errors))
        else:
            staged[row["shard"]] = (before[0] + clips, before[1] + errors)
            progress.part(row["shard"], clips)
    seconds = time.perf_counter() - start
    ordered = [results[i] for i in sorted(results)]  # a fixed merge order: the same float sums on a rerun
    uris = {it.key: it.uri for it in items}
    clips = sorted(({k: v for k, v in c.items() if v is not None} for r in ordered for c in r["clips"]),
                   key=lambda c: (c["key"], c["clip_start"]))
    errors = sorted((e for r in ordered for e in r["errors"]), key=lambda e: e["source"])
    if not clips:
        raise RuntimeError(f"no clip could be scored: {len(errors)} files failed "
                           f"(first: {errors[0]['uri']}: {errors[0]['reason']})" if errors else "no clips")
    partial = reduce(lambda a, b: a + b, (Partial.from_bytes(r["partial"]) for r in ordered))
    result = summarize(config, info, spec, clips, errors, partial, uris)
    result["seconds"] = round(seconds, 3)
    result["clips_per_s"] = round(len(clips) / seconds, 3) if seconds else 0.0
    storage.write_bytes(storage.join(config.output, "eval.json"), (json.dumps(result, indent=2) + "\n").encode())
    write_resolved(storage.join(config.output, RESOLVED_CONFIG), config)
    from sweettok_platform.eval.report import write_card

    write_card(config, result, spec)
    log(f"done: {result['clips']} clips, PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}, "
        f"{len(errors)} errors in {seconds:.1f}s -> {config.output}")
    return result


def summarize(config: EvalConfig, info, spec, clips: list[dict], errors: list[dict], partial,
              uris: dict[str, str]) -> dict[str, Any]:
    """The eval.json dict."""
    sizes = {k: len(v) for k, v in partial.codes.counts.items()}
    patch = info.config.patch
    h_grid, w_grid = patch.grid

    def tokens(frames: int) -> dict[str, int]:
        """Tokens per branch of one clip: images (1 frame) carry the spatial tokens / one teacher frame only."""
        if config.teacher_only:
            return {"teacher": (1 + (frames - 1) // patch.p_t) * h_grid * w_grid}
        if frames == 1:
            return {"spatial": info.config.spatial_queries}
        return {"spatial": info.config.spatial_queries, "temporal": info.config.temporal_queries}

    per_clip_tokens = [tokens(c["frames"]) for c in clips]
    bits = [sum(n * math.log2(sizes[k]) for k, n in t.items()) / (c["frames"] * spec.height * spec.width)
            for t, c in zip(per_clip_tokens, clips)]
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "bundle": config.bundle, "preset": config.preset, "bundle_hash": info.hash,
        "teacher_only": config.teacher_only,
        "source": asdict(config.source), "clips_spec": asdict(spec),
        "clips": len(clips), "files": len({c["key"] for c in clips}) + len(errors),
        "psnr": _mean([c["psnr"] for c in clips]), "ssim": _mean([c["ssim"] for c in clips]),
        "floor": {"psnr": _mean([c["floor_psnr"] for c in clips]), "ssim": _mean([c["floor_ssim"] for c in clips])},
        "tokens_per_clip": _whole(_mean([sum(t.values()) for t in per_clip_tokens])),
        "codes_used": partial.codes.used(), "codebook_size": sizes, "usage": partial.codes.usage(),
        "perplexity": partial.codes.perplexity(),
        "bits_per_pixel": _mean(bits),
    }
    notes = {}
    for name, metric in METRICS.items():
        if not config.weights.get(metric.setting):
            notes[name] = f"left out: no weights (set {metric.setting}, --{metric.setting.replace('_', '-')} PATH_OR_URI)"
        elif metric.per_clip is not None:
            result[name] = _mean([c[name] for c in clips])
        else:
            real, fake = partial.features.get(f"{name}_real"), partial.features.get(f"{name}_fake")
            if real is not None and real.count >= 2:
                result[name] = round(frechet_distance(real, fake), 4)
                result[f"{name}_samples"] = real.count
            elif real is not None:
                notes[name] = f"left out: {real.count} feature vectors, a covariance needs at least 2"
    result["notes"] = notes
    result["conventions"] = {k: v for k, v in CONVENTIONS.items() if k in result or k in ("psnr", "ssim", "floor")}
    result["weights"] = {s: {"uri": uri, "sha256": file_sha256(uri)} for s, uri in config.weights.items() if uri}
    result["errors"] = [{"uri": e["uri"], "source": e["source"], "reason": e["reason"]} for e in errors]
    result["per_clip"] = [{"uri": uris.get(c["key"], c["key"]), "key": c["key"], "clip_start": c["clip_start"],
                           **{k: round(c[k], 6) for k in ("psnr", "ssim", "floor_psnr", "floor_ssim", *METRICS) if k in c}}
                          for c in clips]
    return result
