"""Long videos stream through tokenize: windows are decoded in groups, each under its own time limit, and a
shard leaves the decode task in bounded parts that the driver joins into one data file.

Memory cap: the previous decoder held every window of a file (the helper peaked at ~1,046 MiB on a 160 s
720p video after the last fix, 9.2 GB before it); now the helper reads forward into one reused buffer and
answers 64 windows at a time (~350 MiB whatever the length, benchmarks/long_video.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from sweettok_platform.core import shards
from sweettok_platform.tokenize import pipeline
from sweettok_platform.core.decode import WINDOW_GROUP, TimedDecoder
from sweettok_platform.core.sources import Item
from sweettok_platform.core.media import ClipSpec

HELPER_CAP_BYTES = 640 << 20
SPEC = ClipSpec(frames=5, height=32, width=32, policy="windows")


def _peak_rss(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def looped(src: Path, seconds: int, out: Path) -> Path:
    """The real video looped to ``seconds`` without re-encoding."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return out


def _batch(*paths: Path) -> pa.Table:
    return shards.shard_rows({0: [Item(uri=str(p), key=p.name) for p in paths]})


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_160s_video_leaves_the_decode_task_in_bounded_parts_under_a_memory_cap(real_video: Path, tmp_path: Path):
    video = looped(real_video, 160, tmp_path / "long.mp4")  # bikes.mp4: 1280x720, 25 fps -> 800 windows
    key = (json.dumps(SPEC.__dict__, sort_keys=True), 600.0, json.dumps({}, sort_keys=True))
    decoder = shards._DECODERS[key] = TimedDecoder(SPEC, timeout_s=600.0)
    try:
        parts = [p.to_pylist()[0] for p in shards.decode_shard(_batch(video), SPEC.__dict__, 600.0)]
        peak = _peak_rss(decoder._proc.pid)
    finally:
        del shards._DECODERS[key]
        decoder.close()
    sizes = [len(p["meta"]) for p in parts]
    assert sum(sizes) == 800 and max(sizes) < 2 * WINDOW_GROUP and len(parts) > 1
    assert [p["part"] for p in parts] == list(range(len(parts)))
    assert [p["parts"] for p in parts] == [0] * (len(parts) - 1) + [len(parts)]  # the last part says how many
    windows = [m["window"] for p in parts for m in p["meta"]]
    assert windows == list(range(800))
    assert peak < HELPER_CAP_BYTES, f"decode helper peak RSS {peak / 2**20:.0f} MiB over {HELPER_CAP_BYTES >> 20} MiB"


HANGS_ON_SECOND_GROUP = (
    "import time\n"
    "import sweettok_platform.core.decode as d\n"
    "real = d.decode_group\n"
    "def hang(opened, item, spec, max_pixels, first, count):\n"
    "    if first == 64:\n"
    "        time.sleep(3600)\n"
    "    return real(opened, item, spec, max_pixels, first, count)\n"
    "d.decode_group = hang\n"
    "d.serve_stdio(None)\n"
)


def test_a_hang_loses_only_its_group_and_the_shard_is_joined_from_its_parts(real_video: Path, tmp_path: Path):
    """Windows 64..127 of a 30 s video hang the decoder: that group becomes an error row naming its window range,
    the other 86 windows are tokenized, and the shard's parts (staged by the encoder) join into one data file."""
    from sweettok_platform.core.corpus import STAGING_DIR, read_shard_stats
    from sweettok_platform.core.reader import read_errors, read_table
    from sweettok_platform.core.tokenizer import EncodeConfig, describe_tokenizer

    video = looped(real_video, 30, tmp_path / "long.mp4")  # 150 windows: groups 0, 64 (hangs), 128
    short = tmp_path / "short.mp4"
    short.write_bytes(real_video.read_bytes())  # 50 windows
    key = (json.dumps(SPEC.__dict__, sort_keys=True), 8.0, json.dumps({}, sort_keys=True))
    shards._DECODERS[key] = TimedDecoder(SPEC, timeout_s=8.0, argv=[sys.executable, "-c", HANGS_ON_SECOND_GROUP])
    try:
        parts = list(shards.decode_shard(_batch(video, short), SPEC.__dict__, 8.0))
    finally:
        shards._DECODERS.pop(key).close()
    out = tmp_path / "corpus"
    encode = EncodeConfig(preset="tiny", batch_size=16)
    encoder = pipeline.ShardEncoder(encode.__dict__, describe_tokenizer(encode).hash, str(out))
    joiner, done = pipeline.ShardParts(str(out)), []
    for part in reversed(parts):  # parts may reach the driver in any order
        for row in encoder(part).to_pylist():
            stats = joiner.add(row)
            if stats is not None:
                done.append(stats)
    assert len(done) == 1 and done[0].clips == 64 + 22 + 50 and done[0].files == 2 and done[0].errors == 1
    table = read_table(str(out))
    assert table.num_rows == 136 and len(set(table.column("id").to_pylist())) == 136
    long_windows = sorted(w for w, s in zip(table.column("window").to_pylist(), table.column("source").to_pylist())
                          if s == "long.mp4")
    assert long_windows == list(range(64)) + list(range(128, 150))
    errors = read_errors(str(out)).to_pylist()
    assert len(errors) == 1 and errors[0]["source"] == "long.mp4"
    assert errors[0]["reason"] == "timeout: windows 64..127 of 150 took more than 8 s"
    assert not list((out / STAGING_DIR).glob("*.parquet"))  # joined and removed
    assert read_shard_stats(str(out / "data" / "part-00000.parquet")).clips == 136


def test_a_long_video_tokenizes_through_ray_in_parts_exactly_once(ray_cluster, real_video: Path, tmp_path: Path):
    from sweettok_platform.core.corpus import STAGING_DIR
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
    from sweettok_platform.core.reader import read_table

    root = tmp_path / "videos" / "Bikes"
    root.mkdir(parents=True)
    looped(real_video, 30, root / "long.mp4")  # 150 windows: 3 parts
    (root / "short.mp4").write_bytes(real_video.read_bytes())  # 50 windows
    config = TokenizeJobConfig.from_dict({
        "source": {"kind": "folders", "root": str(tmp_path / "videos")}, "output": str(tmp_path / "corpus"),
        "encode": {"preset": "tiny", "batch_size": 32}, "clips": {"policy": "windows"}, "files_per_shard": 2,
        "progress": False})
    card = tokenize_dataset(config, log=lambda line: None)
    table = read_table(str(tmp_path / "corpus"))
    assert card.clips == table.num_rows == 200 and len(set(table.column("id").to_pylist())) == 200
    assert card.shards == card.shards_done == 1 and card.files_failed == 0
    assert not list((tmp_path / "corpus" / STAGING_DIR).glob("*"))
    again = tokenize_dataset(config, log=lambda line: None)  # a rerun finds the shard done
    assert again.shards_skipped == 1 and read_table(str(tmp_path / "corpus")).num_rows == 200
