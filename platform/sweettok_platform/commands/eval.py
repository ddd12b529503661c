"""``sweettok eval``: score a tokenizer bundle on a dataset (Ray Data); ``sweettok eval fvd``: FVD of two
video directories."""

from __future__ import annotations

import argparse
import json

from sweettok.config import PRESETS
from sweettok_platform.core.config import add_config_args, resolve_settings
from sweettok_platform.core.sources import SOURCE_FLAGS, add_source_args
from sweettok_platform.eval.metrics import METRICS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score a tokenizer (PSNR, SSIM, codebook usage; LPIPS, rFVD, rFID with weights)",
        description="Score a tokenizer bundle on UCF-101, Kinetics, ImageNet, class folders or a manifest (local or "
                    "s3://); writes eval.json and card.md. `sweettok eval fvd --real DIR --fake DIR --i3d W` scores "
                    "two video directories.",
    )
    p.add_argument("action", nargs="?", choices=["fvd", "compare"],
                   help="fvd: FVD between --real and --fake video directories; compare: per-file PSNR/SSIM (+LPIPS, "
                        "FVD with weights) of reconstructions in --fake against originals in --real")
    add_config_args(p)
    add_source_args(p, "only the first N files (source.limit; fvd: videos per side)")
    p.add_argument("-o", "--output", help="directory for eval.json and card.md (local or s3://)")
    p.add_argument("--bundle", help="tokenizer bundle (default: the shipped bundle)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="untrained preset instead of a bundle")
    p.add_argument("--teacher-only", dest="teacher_only", action="store_true", default=None,
                   help="score the bundle's teacher alone (its own codes)")
    for metric in METRICS.values():  # one weights flag per registered metric
        p.add_argument(f"--{metric.setting.replace('_', '-')}", dest=metric.setting, help=metric.help)
    p.add_argument("--metrics", help=f"comma list of weighted metrics that must run: {','.join(METRICS)}")
    p.add_argument("--batch-size", type=int, help="clips per forward pass")
    p.add_argument("--actors", type=int, help="scoring actors")
    p.add_argument("--num-gpus", type=float, help="GPUs per actor (default: 1 if the cluster has GPUs)")
    p.add_argument("--files-per-shard", type=int, help="files per unit of work")
    p.add_argument("--timeout", type=float, help="per-file decode time limit in seconds (decode_timeout_s)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")
    p.add_argument("--real", help="fvd: directory (or s3:// prefix) of real videos")
    p.add_argument("--fake", help="fvd: directory (or s3:// prefix) of generated videos")
    p.add_argument("--frames", type=int, help="fvd: frames per clip (default 17)")
    p.add_argument("--resolution", type=int, help="fvd: frames squashed to this size first (default 256)")
    p.set_defaults(func=run)


FLAGS = {  # argparse dest -> dotted setting
    **SOURCE_FLAGS,
    "output": "output", "bundle": "bundle", "preset": "preset", "teacher_only": "teacher_only", "metrics": "metrics",
    "batch_size": "batch_size", "actors": "actors", "num_gpus": "num_gpus", "files_per_shard": "files_per_shard",
    "timeout": "decode_timeout_s",
    "address": "ray_address", "progress": "progress", **{m.setting: m.setting for m in METRICS.values()},
}


def settings_from_args(args: argparse.Namespace) -> dict:
    """YAML < ``--set`` < flags (``core.config``); --bundle and --preset replace each other."""
    return resolve_settings(args, FLAGS, one_of=(("bundle", "preset"),))


def run(args: argparse.Namespace) -> int:
    if args.action == "compare":
        from sweettok_platform.commands.compare import run_compare

        return run_compare(args)
    if args.action == "fvd":
        from sweettok_platform.eval.fvd import FVDConfig, fvd_dirs

        if not args.real or not args.fake:
            raise ValueError("eval fvd needs --real DIR_OR_URI and --fake DIR_OR_URI")
        extra = {k: getattr(args, k) for k in ("frames", "resolution", "limit", "batch_size") if getattr(args, k)}
        result = fvd_dirs(FVDConfig(real=args.real, fake=args.fake, i3d=args.i3d, **extra))
        print(json.dumps(result))
        return 0
    from sweettok_platform.eval import EvalConfig, evaluate

    result = evaluate(EvalConfig.from_dict(settings_from_args(args)))
    summary = {k: result[k] for k in ("psnr", "ssim", "floor", "tokens_per_clip", "codes_used", "bits_per_pixel",
                                      "clips", "bundle_hash") if k in result}
    summary.update({k: result[k] for k in METRICS if k in result})
    summary["errors"] = len(result["errors"])
    print(json.dumps(summary))
    return 0
