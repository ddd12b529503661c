"""``sweettok reconstruct`` on real videos: outputs equal the model's encode/decode of the same windows called
in this process, the tree is mirrored, bad files and empty patterns are listed while the run goes on, a rerun
skips finished outputs, and the Ray actor pool writes the same files as the in-process loop."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import decord
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from sweettok import SweetTokenizer, from_uint8, to_uint8
from sweettok_platform.cli import main
from sweettok_platform.tokenize.samples import corrupt_file
from sweettok_platform.core.media import ClipSpec, resize_frames
from sweettok_platform.reconstruct import ReconstructConfig, reconstruct, stitch_starts

UCF = REPO / "jobs" / "data" / "ucf-tiny"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two class folders of real videos, a PNG frame in a nested folder, and a corrupt video."""
    root = tmp_path_factory.mktemp("inputs")
    for name in ("Bikes/v_Bikes_g01_c01.avi", "CarphonePristine/v_CarphonePristine_g01_c01.avi"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(UCF / name, root / name)
    (root / "stills" / "deep").mkdir(parents=True)
    frame = decord.VideoReader(str(UCF / "Bikes/v_Bikes_g02_c01.avi"))[3].asnumpy()
    Image.fromarray(frame).save(root / "stills" / "deep" / "frame.png")
    corrupt_file(root / "Bikes" / "zz_broken.avi")
    return root


def expected_video(model: SweetTokenizer, path: Path) -> np.ndarray:
    """Every frame decoded by decord, squashed to the model size, cut into windows that cover every frame,
    encoded and decoded in one batch, stitched: the reference the command must match."""
    p = model.config.patch
    frames = decord.VideoReader(str(path)).get_batch(list(range(len(decord.VideoReader(str(path)))))).asnumpy()
    frames = resize_frames(frames, ClipSpec(frames=p.frames, height=p.height, width=p.width))
    n = len(frames)
    starts = list(range(0, n - p.frames + 1, p.frames))
    if starts[-1] + p.frames < n:
        starts.append(n - p.frames)
    x = from_uint8(torch.from_numpy(np.stack([frames[s : s + p.frames] for s in starts])))
    with torch.no_grad():
        out = to_uint8(model.decode_ids(model.encode(x))).permute(0, 2, 3, 4, 1).numpy()
    pieces, covered = [], 0
    for s, window in zip(starts, out):
        pieces.append(window[covered - s :])
        covered = s + p.frames
    return np.concatenate(pieces)


def test_stitch_starts_cover_every_frame_once_past_the_last_window() -> None:
    assert stitch_starts(24, 5) == [0, 5, 10, 15, 19]
    assert stitch_starts(10, 5) == [0, 5] and stitch_starts(5, 5) == [0]
    with pytest.raises(ValueError, match="too short: 4 frames"):
        stitch_starts(4, 5)


def test_folder_in_folder_out_matches_the_model_in_process(tree, model, tmp_path) -> None:
    out = tmp_path / "out"
    result = reconstruct(ReconstructConfig(inputs=[str(tree)], output=str(out), preset="tiny", video_format="npy",
                                           progress=False))
    assert sorted(result.written) == ["Bikes/v_Bikes_g01_c01.npy", "CarphonePristine/v_CarphonePristine_g01_c01.npy",
                                      "stills/deep/frame.png"]
    assert [e["output"] for e in result.errors] == ["Bikes/zz_broken.npy"]
    assert "cannot decode video" in result.errors[0]["reason"]
    for rel in ("Bikes/v_Bikes_g01_c01", "CarphonePristine/v_CarphonePristine_g01_c01"):
        got = np.load(out / f"{rel}.npy")
        want = expected_video(model, tree / f"{rel}.avi")
        assert got.shape == want.shape and len(got) == len(decord.VideoReader(str(tree / f"{rel}.avi")))
        assert np.array_equal(got, want)
    still = np.asarray(Image.open(out / "stills/deep/frame.png"))
    assert still.shape == (32, 32, 3)
    report = json.loads((out / "reconstruct.json").read_text())
    assert report["tokenizer"] == "preset:tiny:seed0" and len(report["errors"]) == 1

    # a rerun skips finished outputs; a removed one is redone, the others are not rewritten
    kept = out / "Bikes/v_Bikes_g01_c01.npy"
    before = kept.stat().st_mtime_ns
    os.remove(out / "stills/deep/frame.png")
    again = reconstruct(ReconstructConfig(inputs=[str(tree)], output=str(out), preset="tiny", video_format="npy",
                                          progress=False))
    assert again.written == ["stills/deep/frame.png"] and len(again.skipped) == 2 and len(again.errors) == 1
    assert kept.stat().st_mtime_ns == before


def test_cli_globs_files_and_missing_patterns(tree, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    code = main(["reconstruct", str(tree / "*" / "v_*.avi"), str(tree / "stills"), str(tmp_path / "nothing-here"),
                 "-o", str(out), "--preset", "tiny", "--no-progress"])
    assert code == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "reconstruct.json")
    assert written == ["Bikes/v_Bikes_g01_c01.mp4", "CarphonePristine/v_CarphonePristine_g01_c01.mp4", "deep/frame.png"]
    assert "nothing-here: matches no video or image file" in capsys.readouterr().out
    mp4 = decord.VideoReader(str(out / "Bikes/v_Bikes_g01_c01.mp4"))
    source = decord.VideoReader(str(tree / "Bikes/v_Bikes_g01_c01.avi"))
    assert len(mp4) == len(source) and mp4[0].shape == (32, 32, 3)
    assert mp4.get_avg_fps() == pytest.approx(source.get_avg_fps(), rel=0.01)

    assert main(["reconstruct", str(tmp_path / "empty*"), "-o", str(tmp_path / "none"), "--preset", "tiny",
                 "--no-progress"]) == 1
    assert "no file was reconstructed" in capsys.readouterr().err


def test_ray_actor_pool_writes_what_the_loop_writes(ray_cluster, tree, tmp_path) -> None:
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    settings = {"inputs": [str(tree / "Bikes"), str(tree / "CarphonePristine")], "preset": "tiny",
                "video_format": "npy", "progress": False}
    reconstruct(ReconstructConfig(output=str(local), **settings))
    result = reconstruct(ReconstructConfig(output=str(ray_out), ray=True, actors=2, **settings))
    assert sorted(result.written) == ["v_Bikes_g01_c01.npy", "v_CarphonePristine_g01_c01.npy"]
    assert [e["output"] for e in result.errors] == ["zz_broken.npy"] and result.tokenizer == "preset:tiny:seed0"
    for name in result.written:
        assert np.array_equal(np.load(local / name), np.load(ray_out / name))


def test_s3_prefix_in_and_out_and_compare_reads_s3(s3_bucket, tree, tmp_path) -> None:
    import io

    import boto3

    s3 = boto3.client("s3")
    s3.upload_file(str(tree / "Bikes/v_Bikes_g01_c01.avi"), s3_bucket, "in/Bikes/v_Bikes_g01_c01.avi")
    s3.upload_file(str(tree / "stills/deep/frame.png"), s3_bucket, "in/frame.png")
    settings = {"preset": "tiny", "video_format": "npy", "progress": False}
    result = reconstruct(ReconstructConfig(inputs=[f"s3://{s3_bucket}/in"], output=f"s3://{s3_bucket}/out",
                                           **settings))
    assert sorted(result.written) == ["Bikes/v_Bikes_g01_c01.npy", "frame.png"] and not result.errors
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]
    keys = sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))  # pyarrow leaves folder markers
    assert keys == ["out/Bikes/v_Bikes_g01_c01.npy", "out/frame.png", "out/reconstruct.json"]
    local = tmp_path / "local"
    reconstruct(ReconstructConfig(inputs=[str(tree / "Bikes/v_Bikes_g01_c01.avi")], output=str(local), **settings))
    body = s3.get_object(Bucket=s3_bucket, Key="out/Bikes/v_Bikes_g01_c01.npy")["Body"].read()
    assert np.array_equal(np.load(io.BytesIO(body)), np.load(local / "v_Bikes_g01_c01.npy"))

    from sweettok_platform.eval.compare import CompareConfig, compare_dirs

    scored = compare_dirs(CompareConfig(real=f"s3://{s3_bucket}/in", fake=f"s3://{s3_bucket}/out", progress=False),
                          log=lambda _: None)
    assert [f["path"] for f in scored["files"]] == ["Bikes/v_Bikes_g01_c01", "frame"] and not scored["errors"]


def test_output_writer_refuses_a_short_file_and_aborts_cleanly(tmp_path) -> None:
    from sweettok_platform.reconstruct.writer import OutputWriter

    for name in ("a.mp4", "a.npy"):
        writer = OutputWriter(str(tmp_path / name), total=10, fps=8.0)
        writer.append(np.zeros((4, 32, 32, 3), np.uint8))
        with pytest.raises(RuntimeError, match="4 frames written, 10 expected"):
            writer.close()
        writer.abort()
        assert not (tmp_path / name).exists()
