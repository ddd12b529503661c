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
from sweettok_platform.data.corpus import plan_shards
from sweettok_platform.data.sources import list_items
from sweettok_platform.data.tokenizer import EncodeConfig, describe_tokenizer
from sweettok_platform.eval.config import WEIGHTED_METRICS, EvalConfig
from sweettok_platform.eval.conventions import CONVENTIONS, check_weights
from sweettok_platform.eval.pipeline import run_local, run_ray
from sweettok_platform.eval.scorer import Partial, ScorerConfig, file_sha256
from sweettok_platform.log import get_logger

SCHEMA_VERSION = 1


_log = get_logger("eval").info


class Progress:
    """Prints shards done, clips/s and errors while the job runs (as tokenize does)."""

    def __init__(self, total: int, log: Callable[[str], None], every_s: float = 2.0) -> None:
        self.total, self.log, self.every_s = total, log, every_s
        self.start = self.last = time.perf_counter()
        self.shards = self.clips = self.errors = 0

    def update(self, clips: int, errors: int, shard_done: bool = True) -> None:
        self.shards += shard_done
        self.clips += clips
        self.errors += errors
        now = time.perf_counter()
        if now - self.last >= self.every_s or (shard_done and self.shards == self.total):
            self.last = now
            dt = max(now - self.start, 1e-9)
            self.log(f"shards {self.shards}/{self.total}  clips {self.clips} ({self.clips / dt:.1f} clips/s)  "
                     f"errors {self.errors}  {dt:.1f}s")


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
                          lpips_vgg=config.lpips_vgg, i3d=config.i3d, inception=config.inception,
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
    results = {}
    for row in rows:
        results[row["shard"], row["part"]] = row  # a part Ray sent twice (a retried decode task) counts once
        progress.update(len(json.loads(row["clips"])), len(json.loads(row["errors"])), shard_done=row["parts"] > 0)
    seconds = time.perf_counter() - start
    ordered = [results[i] for i in sorted(results)]  # a fixed merge order: the same float sums on a rerun
    uris = {it.key: it.uri for it in items}
    clips = sorted((c for r in ordered for c in json.loads(r["clips"])), key=lambda c: (c["key"], c["clip_start"]))
    errors = sorted((e for r in ordered for e in json.loads(r["errors"])), key=lambda e: e["source"])
    if not clips:
        raise RuntimeError(f"no clip could be scored: {len(errors)} files failed "
                           f"(first: {errors[0]['uri']}: {errors[0]['reason']})" if errors else "no clips")
    partial = reduce(lambda a, b: a + b, (Partial.from_bytes(r["partial"]) for r in ordered))
    result = summarize(config, info, spec, clips, errors, partial, uris)
    result["seconds"] = round(seconds, 3)
    result["clips_per_s"] = round(len(clips) / seconds, 3) if seconds else 0.0
    storage.write_bytes(storage.join(config.output, "eval.json"), (json.dumps(result, indent=2) + "\n").encode())
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
    if "lpips" in clips[0]:
        result["lpips"] = _mean([c["lpips"] for c in clips])
    for metric in ("rfvd", "rfid"):
        real, fake = partial.features.get(f"{metric}_real"), partial.features.get(f"{metric}_fake")
        if real is not None and real.count >= 2:
            result[metric] = round(frechet_distance(real, fake), 4)
            result[f"{metric}_samples"] = real.count
        elif real is not None:
            notes[metric] = f"left out: {real.count} feature vectors, a covariance needs at least 2"
    for metric, setting in WEIGHTED_METRICS.items():
        if getattr(config, setting) is None:
            notes[metric] = f"left out: no weights (set {setting}, --{setting.replace('_', '-')} PATH_OR_URI)"
    result["notes"] = notes
    result["conventions"] = {k: v for k, v in CONVENTIONS.items() if k in result or k in ("psnr", "ssim", "floor")}
    result["weights"] = {s: {"uri": uri, "sha256": file_sha256(uri)} for s, uri in config.weights().items()}
    result["errors"] = [{"uri": e["uri"], "source": e["source"], "reason": e["reason"]} for e in errors]
    result["per_clip"] = [{"uri": uris.get(c["key"], c["key"]), "key": c["key"], "clip_start": c["clip_start"],
                           **{k: round(c[k], 6) for k in ("psnr", "ssim", "floor_psnr", "floor_ssim", "lpips") if k in c}}
                          for c in clips]
    return result
