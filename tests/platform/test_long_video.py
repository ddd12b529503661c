"""A long video decodes in bounded memory: the decode helper's peak RSS on a 160 s video stays under a cap
that the previous decoder (all full-size windows kept until the end, float resize temporaries retained)
exceeded: ~2.9 GiB there, ~1.3 GiB now (benchmarks/long_video.py, tiny preset's 5x32x32 windows)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sweettok_platform.data.decode import TimedDecoder
from sweettok_platform.data.sources import Item
from sweettok_platform.media import ClipSpec

CAP_BYTES = 2 << 30


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_160s_video_decodes_under_memory_cap(real_video: Path, tmp_path: Path) -> None:
    import imageio_ffmpeg

    video = tmp_path / "long.mp4"  # the real video looped to 160 s without re-encoding
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i",
                    str(real_video), "-t", "160", "-c", "copy", str(video)], check=True)
    spec = ClipSpec(frames=5, height=32, width=32, policy="windows")
    decoder = TimedDecoder(spec, timeout_s=600)
    try:
        decoder._start()
        out = decoder(Item(uri=str(video), key=video.name))
        peak = _peak_rss(decoder._proc.pid)
    finally:
        decoder.close()
    assert out.error is None
    assert len(out.clips) >= 790  # ~800 windows of 5 frames
    assert [c.window for c in out.clips] == list(range(len(out.clips)))
    assert peak < CAP_BYTES, f"decode helper peak RSS {peak / 2**20:.0f} MiB over the {CAP_BYTES >> 20} MiB cap"
