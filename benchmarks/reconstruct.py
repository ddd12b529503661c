"""``sweettok reconstruct`` against a plain loop over model.encode/decode on the same files.

Both reconstruct every frame of every video in a folder (default: jobs/data/ucf-tiny, the shipped bundle) and
write .mp4 files: the loop decodes each video with decord, squashes it to the model size, cuts windows that cover
every frame, encodes and decodes them in one batch and writes the stitched frames; ``reconstruct()`` is the
command's own path (listing, resume check, windowed reading, report), with the model load counted. Rounds are
interleaved (loop, command, loop, ...), each into a fresh folder; medians of the rounds and their ratio are printed.

    python benchmarks/reconstruct.py --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plain_loop(files: list[Path], root: Path, bundle: str, out: Path) -> int:
    """The loop a user would write; returns the frames reconstructed."""
    import decord
    import numpy as np
    import torch

    from sweettok import from_uint8, to_uint8
    from sweettok_platform.core.tokenizer import build_tokenizer
    from sweettok_platform.core.media import ClipSpec, resize_frames, write_media

    model = build_tokenizer(bundle)
    p = model.config.patch
    done = 0
    for path in files:
        reader = decord.VideoReader(str(path), num_threads=1)
        frames = resize_frames(reader.get_batch(list(range(len(reader)))).asnumpy(),
                               ClipSpec(frames=p.frames, height=p.height, width=p.width))
        starts = list(range(0, len(frames) - p.frames + 1, p.frames))
        if starts[-1] + p.frames < len(frames):
            starts.append(len(frames) - p.frames)
        x = from_uint8(torch.from_numpy(np.stack([frames[s : s + p.frames] for s in starts])))
        with torch.no_grad():
            y = to_uint8(model.decode_ids(model.encode(x))).permute(0, 2, 3, 4, 1).numpy()
        pieces, covered = [], 0
        for s, window in zip(starts, y):
            pieces.append(window[covered - s :])
            covered = s + p.frames
        video = np.concatenate(pieces)
        target = out / path.relative_to(root).with_suffix(".mp4")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_media(video, str(target), fps=reader.get_avg_fps())
        done += len(video)
    return done


def command(root: Path, bundle: str, out: Path) -> int:
    from sweettok_platform.reconstruct import ReconstructConfig, reconstruct

    result = reconstruct(ReconstructConfig(inputs=[str(root)], output=str(out), bundle=bundle, progress=False),
                         log=lambda _: None)
    if result.errors:
        raise RuntimeError(f"reconstruct failed on {result.errors}")
    return len(result.written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO / "jobs" / "data" / "ucf-tiny"), help="folder of videos")
    parser.add_argument("--bundle", help="tokenizer bundle (default: the shipped one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    args = parser.parse_args()

    import torch

    from sweettok_platform.core.media import VIDEO_SUFFIXES
    from sweettok_platform.core.bundles import default_bundle

    torch.set_num_threads(args.threads)
    bundle = args.bundle or default_bundle()
    root = Path(args.root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    work = Path(tempfile.mkdtemp(prefix="reconstruct-bench-"))
    loop_s, command_s = [], []
    try:
        plain_loop(files[:1], root, bundle, work / "warm")  # imports and first-call costs out of the rounds
        for r in range(args.rounds):
            began = time.perf_counter()
            frames = plain_loop(files, root, bundle, work / f"loop{r}")
            loop_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            written = command(root, bundle, work / f"cmd{r}")
            command_s.append(time.perf_counter() - began)
            assert written == len(files), (written, len(files))
            print(f"round {r + 1}: loop {loop_s[-1]:.2f} s, reconstruct {command_s[-1]:.2f} s, "
                  f"ratio {loop_s[-1] / command_s[-1]:.2f} ({len(files)} files, {frames} frames)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loop, cmd = statistics.median(loop_s), statistics.median(command_s)
    ratios = [a / b for a, b in zip(loop_s, command_s)]
    print(f"median: loop {loop:.2f} s ({len(files) / loop:.2f} files/s), reconstruct {cmd:.2f} s "
          f"({len(files) / cmd:.2f} files/s); throughput reconstruct / loop = {loop / cmd:.2f} "
          f"(per-round median {statistics.median(ratios):.2f}; goal >= 0.9)")


if __name__ == "__main__":
    main()
