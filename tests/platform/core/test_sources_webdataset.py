"""The ``webdataset`` source kind (``core/sources/webdataset.py``: one file plus one registry line): ``.tar``
shards of real mp4 videos and jpg images with ``.cls`` labels, local and on a moto S3 server.

Outside references: the files that went into the shards. Listing gives every sample with its label; a member
read is byte-identical to its file; a tokenize job over the shards writes exactly the tokens of the same job
over the same files as class folders; training's index and loader see the same frames as from the files.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import sweettok
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.core.sources import SourceConfig, list_items, read_item
from sweettok_platform.tokenize.samples import make_sample_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory, real_videos) -> Path:
    """Class folders: 2 classes x 2 real videos of 12 frames, plus 2 jpg frames in a third class."""
    root = tmp_path_factory.mktemp("wds-files")
    videos = [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4")]
    make_sample_dataset(root, videos, layout="folders", per_class=2, frames=12)
    from PIL import Image

    (root / "zimages").mkdir()
    rng = np.random.default_rng(0)
    for n in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(root / "zimages" / f"img{n}.jpg")
    return root


def write_shards(files: Path, out: Path, per_shard: int = 3) -> dict[str, tuple[Path, int]]:
    """WebDataset shards of ``files`` (sample key = class_file, label = the class's sorted index), with a
    non-media member per sample; returns {member name: (file, label)}."""
    out.mkdir(parents=True, exist_ok=True)
    classes = sorted(p.name for p in files.iterdir() if p.is_dir())
    samples = [(c, p) for c in classes for p in sorted((files / c).iterdir())]
    members = {}
    for s in range(0, len(samples), per_shard):
        with tarfile.open(out / f"shard-{s // per_shard:05d}.tar", "w") as tar:
            for c, p in samples[s : s + per_shard]:
                key = f"{c}_{p.stem}"
                label = classes.index(c)
                for name, data in ((f"{key}{p.suffix}", p.read_bytes()), (f"{key}.cls", str(label).encode()),
                                   (f"{key}.json", b'{"caption": "x"}')):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                members[f"{key}{p.suffix}"] = (p, label)
    return members


def test_listing_and_member_reads_match_the_files_that_went_in(files, tmp_path):
    members = write_shards(files, tmp_path / "shards")
    items = list_items(SourceConfig(kind="webdataset", root=str(tmp_path / "shards")))
    assert len(items) == len(members) == 6 and len({i.key for i in items}) == 6
    for item in items:
        shard, member = item.key.split("/")
        original, label = members[member]
        assert shard.startswith("shard-") and item.label == label
        assert read_item(item.uri) == original.read_bytes()
    one = list_items(SourceConfig(kind="webdataset", root=str(tmp_path / "shards" / "shard-00000.tar")))
    assert [i.key for i in one] == [i.key for i in items if i.key.startswith("shard-00000.tar/")]


def test_bad_settings_name_the_key(tmp_path):
    from sweettok.typed import ConfigError, build

    with pytest.raises(ConfigError, match=r"source: kind must be one of \[.*'webdataset'\], got 'tarballs'"):
        build(SourceConfig, {"kind": "tarballs"}, "source")
    with pytest.raises(FileNotFoundError, match="no .tar shards"):
        list_items(SourceConfig(kind="webdataset", root=str(tmp_path)))


def test_tokenize_over_shards_equals_tokenize_over_the_same_files(ray_cluster, files, tmp_path):
    from sweettok_platform.core.reader import read_table
    from sweettok_platform.core.tokenizer import EncodeConfig
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset

    write_shards(files, tmp_path / "shards")
    torch.manual_seed(0)
    bundle = str(tmp_path / "bundle")
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), bundle)

    def tokens(source: SourceConfig, out: str, name) -> dict[tuple[int, str, int], list[int]]:
        config = TokenizeJobConfig(source=source, output=str(tmp_path / out), encode=EncodeConfig(bundle=bundle),
                                   files_per_shard=2, clips=ClipSpec(policy="windows", stride=5), progress=False)
        card = tokenize_dataset(config)
        assert card.complete and card.files_failed == 0
        rows = read_table(config.output).to_pylist()
        return {(r["label"], name(r["source"]), r["clip_start"]): r["spatial"] + r["temporal"] for r in rows}

    # a row's file: "shard-00000.tar/<class>_<file>" from the shards, "<class>/<file>" from the folders
    from_tars = tokens(SourceConfig(kind="webdataset", root=str(tmp_path / "shards")), "tars",
                       lambda key: key.split("/", 1)[1])
    from_files = tokens(SourceConfig(kind="folders", root=str(files)), "files", lambda key: key.replace("/", "_"))
    assert len(from_tars) > 6 and from_tars == from_files


def test_training_reads_the_shards_as_it_reads_the_files(files, tmp_path):
    from sweettok_platform.train import index as dataset_index
    from sweettok_platform.train.config import DatasetConfig
    from sweettok_platform.train.data import dataset_files, worker_loader

    write_shards(files, tmp_path / "shards")
    tars = DatasetConfig(source=SourceConfig(kind="webdataset", root=str(tmp_path / "shards")), decode_helper=True)
    plain = DatasetConfig(source=SourceConfig(kind="folders", root=str(files)), decode_helper=False)
    tar_index = dataset_index.DatasetIndex(dataset_index.build(dataset_files(tars), parallel=False))
    file_index = dataset_index.DatasetIndex(dataset_index.build(dataset_files(plain), parallel=False))
    assert sorted(tar_index.frames) == sorted(file_index.frames) and min(tar_index.frames) >= 1
    assert tar_index.videos().frames and all(f == 12 for f in tar_index.videos().frames)

    def batches(dataset: DatasetConfig, index) -> list[torch.Tensor]:
        loader = worker_loader(dataset, frames=5, height=32, width=32, images=False, batch_size=2, rank=0, world=1,
                               seed=3, index=index)
        try:
            return [loader.next_batch() for _ in range(3)]
        finally:
            loader.close()

    # the listings order samples differently (shard keys vs folder keys): compare the sets of clips seen
    got = {tuple(b[i].flatten()[::97].tolist()) for b in batches(tars, tar_index) for i in range(2)}
    ref_all = {tuple(b[i].flatten()[::97].tolist()) for b in batches(plain, file_index) for i in range(2)}
    assert len(got) >= 2 and len(ref_all) >= 2
    loader = worker_loader(plain, frames=5, height=32, width=32, images=False, batch_size=1, rank=0, world=1, seed=0,
                           index=file_index)
    try:
        every = {tuple(loader.next_batch()[0].flatten()[::97].tolist()) for _ in range(len(loader) * 2)}
    finally:
        loader.close()
    assert got <= every  # each clip training cut from a tar member is a clip of the original files


def test_shards_on_s3_are_listed_from_their_headers_and_read_by_range(files, tmp_path, s3_bucket):
    import boto3

    members = write_shards(files, tmp_path / "shards")
    s3 = boto3.client("s3")
    for shard in sorted((tmp_path / "shards").iterdir()):
        s3.upload_file(str(shard), s3_bucket, f"wds/{shard.name}")
    items = list_items(SourceConfig(kind="webdataset", root=f"s3://{s3_bucket}/wds"))
    assert len(items) == len(members)
    for item in items:
        original, label = members[item.key.split("/")[1]]
        assert item.uri.endswith(f"s3://{s3_bucket}/wds/{item.key.split('/')[0]}#{item.key.split('/')[1]}")
        assert read_item(item.uri) == original.read_bytes() and item.label == label
