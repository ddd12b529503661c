"""Dataset readers, listing (local and S3), clip decoding with a time limit. No Ray here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import numpy as np
import pytest

from sweettok import storage
from sweettok_platform.core.decode import TimedDecoder, decode_file
from sweettok_platform.tokenize.samples import corrupt_file, cut_video, make_sample_dataset, truncate_file
from sweettok_platform.core.sources import Item, SourceConfig, list_items
from sweettok_platform.core.media import ClipSpec, read_clips, read_clips_uri

SPEC = ClipSpec(frames=5, height=32, width=32)


@pytest.fixture(scope="module")
def videos(real_videos: list[Path]) -> list[Path]:
    return [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4")]


def test_ucf101_split_lists(tmp_path: Path, videos: list[Path]) -> None:
    files = make_sample_dataset(tmp_path, videos, layout="ucf101", per_class=3, frames=12)
    train = list_items(SourceConfig(kind="ucf101", root=str(tmp_path), split="train"))
    test = list_items(SourceConfig(kind="ucf101", root=str(tmp_path), split="test"))
    assert len(train) + len(test) == len(files) == 6
    assert not {i.key for i in train} & {i.key for i in test}
    classes = (tmp_path / "classInd.txt").read_text().split()
    for item in train + test:
        assert item.key.startswith(item.label_name + "/")
        assert classes[2 * item.label + 1] == item.label_name  # classInd is 1-based, labels 0-based
        assert os.path.exists(item.uri)
    with pytest.raises(ValueError, match="train or test"):
        list_items(SourceConfig(kind="ucf101", root=str(tmp_path), split="val"))


def test_kinetics_csv_and_missing_clip(tmp_path: Path, videos: list[Path]) -> None:
    files = make_sample_dataset(tmp_path, videos, layout="kinetics", per_class=2, frames=12)
    files[0].unlink()  # Kinetics always has some videos that could not be downloaded
    items = list_items(SourceConfig(kind="kinetics", root=str(tmp_path), split="train"))
    assert len(items) == 4
    assert sorted(i.label_name for i in items) == ["Bikes", "Bikes", "CarphonePristine", "CarphonePristine"]
    assert {i.label for i in items} == {0, 1}
    missing = next(i for i in items if i.key == files[0].name)
    result = decode_file(missing, SPEC)
    assert result.error is not None and "no such file" in result.error
    assert all(os.path.exists(i.uri) for i in items if i is not missing)


def test_imagenet_synsets_and_manifest(tmp_path: Path, real_video: Path) -> None:
    import imageio.v3 as iio

    frames = read_clips(str(real_video), ClipSpec(frames=1, height=40, width=48))[0].frames
    for synset in ("n01440764", "n01443537"):
        (tmp_path / "train" / synset).mkdir(parents=True)
        iio.imwrite(tmp_path / "train" / synset / f"{synset}_1.JPEG", frames[0])
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius\n")
    items = list_items(SourceConfig(kind="imagenet", root=str(tmp_path / "train")))
    assert [(i.label, i.label_name) for i in items] == [(0, "tench"), (1, "goldfish")]
    clips = decode_file(items[0], SPEC).clips
    assert len(clips) == 1 and clips[0].frames.shape == (1, 32, 32, 3)  # an image is a 1-frame clip

    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"uri": f"train/{i.key}", "label": 7}) + "\n" for i in items))
    manifest = list_items(SourceConfig(kind="manifest", root=str(tmp_path / "m.jsonl")))
    assert [m.uri for m in manifest] == [i.uri for i in items] and {m.label for m in manifest} == {7}
    (tmp_path / "m.csv").write_text("uri,label\n" + "".join(f"train/{i.key},\n" for i in items))
    assert {m.label for m in list_items(SourceConfig(kind="manifest", root=str(tmp_path / "m.csv")))} == {-1}


def test_s3_listing_and_reading(s3_bucket: str, tmp_path: Path, real_video: Path) -> None:
    cut_video(real_video, tmp_path / "a.mp4", 0, 12)
    s3 = boto3.client("s3")
    for key in ("ds/walk/a.mp4", "ds/run/b.mp4", "ds/run/notes.txt"):
        s3.upload_file(str(tmp_path / "a.mp4"), s3_bucket, key)
    root = f"s3://{s3_bucket}/ds"
    assert storage.list_files(root, (".mp4",)) == [f"{root}/run/b.mp4", f"{root}/walk/a.mp4"]
    items = list_items(SourceConfig(kind="folders", root=root))
    assert [(i.key, i.label, i.label_name) for i in items] == [("run/b.mp4", 0, "run"), ("walk/a.mp4", 1, "walk")]
    remote = read_clips_uri(items[0].uri, SPEC)
    local = read_clips(str(tmp_path / "a.mp4"), SPEC)
    assert np.array_equal(remote[0].frames, local[0].frames)


def test_bad_files_and_time_limit(tmp_path: Path, real_video: Path) -> None:
    good = tmp_path / "good.mp4"
    cut_video(real_video, good, 0, 12)
    corrupt_file(tmp_path / "corrupt.mp4")
    truncate_file(good, tmp_path / "truncated.mp4", keep=0.2)
    os.mkfifo(tmp_path / "hang.mp4")  # opening it blocks forever: a decoder that hangs
    decoder = TimedDecoder(SPEC, timeout_s=3.0)
    try:
        results = {name: decoder(Item(uri=str(tmp_path / name), key=name))
                   for name in ("good.mp4", "corrupt.mp4", "truncated.mp4", "hang.mp4", "good.mp4")}
    finally:
        decoder.close()
    assert results["good.mp4"].error is None and len(results["good.mp4"].clips) == 1
    assert "cannot decode" in results["corrupt.mp4"].error
    assert results["truncated.mp4"].error is not None
    assert results["hang.mp4"].error.startswith("timeout")
    direct = decode_file(Item(uri=str(good), key="good.mp4"), SPEC).clips[0]
    assert np.array_equal(results["good.mp4"].clips[0].frames, direct.frames)  # the helper was restarted


def test_tokenize_and_training_take_the_same_file_types(tmp_path: Path, real_video: Path) -> None:
    root = tmp_path / "folders"
    names = ["a/clip.mp4", "a/clip.M4V", "b/photo.JPEG", "b/photo.webp", "b/notes.txt", "b/clip.mov"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(real_video.read_bytes() if not name.endswith(".txt") else b"not media")
    from sweettok_platform.core.sources.paths import resolve_paths

    tokenized = {item.key for item in list_items(SourceConfig(kind="folders", root=str(root)))}
    trained = {os.path.relpath(p, root) for p in resolve_paths([str(root)])}
    assert tokenized == trained == set(names) - {"b/notes.txt"}
