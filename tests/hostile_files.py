"""Real media files for the hostile-input tests, made with the ffmpeg executable that imageio-ffmpeg ships."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def video(path: Path, width: int, height: int, frames: int, *, rate: int = 8) -> Path:
    """A real H.264 video (mp4/mov/mkv) or VP8 (webm) or MJPEG (avi) of ``frames`` test-pattern frames."""
    codec = {".webm": ["-c:v", "libvpx"], ".avi": ["-c:v", "mjpeg"]}.get(path.suffix, ["-c:v", "libx264"])
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={width}x{height}:r={rate}", "-frames:v", str(frames), *codec,
           "-pix_fmt", "yuvj420p" if path.suffix == ".avi" else "yuv420p", str(path))
    return path


def huge_video(path: Path) -> Path:
    """The issue's file: a ~200 KB mp4 of four 8192x8192 frames (decoding one frame costs ~0.7 GB)."""
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=8192x8192:r=8:d=0.5", "-c:v", "libx264", "-preset", "ultrafast",
           "-threads", "1", "-x264-params", "rc-lookahead=0:sync-lookahead=0", "-pix_fmt", "yuv420p", str(path))
    return path
