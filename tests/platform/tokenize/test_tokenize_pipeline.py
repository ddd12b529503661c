"""The Ray Data tokenize pipeline end to end: bad files, S3 in and out, tokens equal to direct encoding."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

import sweettok
from sweettok_platform.core.corpus import CorpusCard, clip_id
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.core.reader import CorpusDataset, ray_dataset, read_errors, read_table
from sweettok_platform.tokenize.samples import corrupt_file, make_sample_dataset, truncate_file
from sweettok_platform.core.sources import SourceConfig, list_items
from sweettok_platform.core.tokenizer import EncodeConfig
from sweettok_platform.core.media import ClipSpec, read_clips


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> Path:
    """UCF-101 layout, 2 classes x 3 videos of 20 frames (72x96) cut from real videos."""
    root = tmp_path_factory.mktemp("ucf")
    videos = [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4")]
    make_sample_dataset(root, videos, layout="ucf101", per_class=3, frames=20)
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    uri = str(tmp_path_factory.mktemp("bundle"))
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), uri)
    return uri


def direct_tokens(bundle: str, files: dict[str, str], spec: ClipSpec) -> dict[str, list[int]]:
    """{row id: ids} from decoding each file and encoding its clips with the model, no pipeline."""
    model = sweettok.load_bundle(bundle)
    out = {}
    for key, path in files.items():
        clips = read_clips(path, spec, name=key)
        ids = model.encode(sweettok.from_uint8(torch.from_numpy(np.stack([c.frames for c in clips]))))
        out.update({clip_id(key, c.start): row for c, row in zip(clips, ids.tolist())})
    return out


def test_bad_files_go_to_errors_and_the_rest_is_tokenized(ray_cluster, dataset: Path, bundle: str,
                                                          tmp_path: Path) -> None:
    good = {i.key: i.uri for i in list_items(SourceConfig(kind="folders", root=str(dataset)))}
    bad = tmp_path / "bad"
    bad.mkdir()
    corrupt_file(bad / "corrupt.mp4")
    truncate_file(next(iter(good.values())), bad / "truncated.avi", keep=0.1)
    os.mkfifo(bad / "hang.mp4")  # a decoder that never returns
    manifest = tmp_path / "manifest.csv"
    rows = [(k, u) for k, u in good.items()] + [(f"bad/{n}", str(bad / n)) for n in
                                                ("corrupt.mp4", "truncated.avi", "hang.mp4", "missing.mp4")]
    manifest.write_text("uri,label\n" + "".join(f"{u},{n % 2}\n" for n, (_, u) in enumerate(rows)))
    config = TokenizeJobConfig(source=SourceConfig(kind="manifest", root=str(manifest)), output=str(tmp_path / "corpus"),
                            encode=EncodeConfig(bundle=bundle, batch_size=3), files_per_shard=4,
                            clips=ClipSpec(policy="windows", stride=6), decode_timeout_s=4.0, progress=False)
    card = tokenize_dataset(config)

    errors = read_errors(config.output).to_pylist()
    reasons = {Path(e["uri"]).name: e["reason"] for e in errors}
    assert set(reasons) == {"corrupt.mp4", "truncated.avi", "hang.mp4", "missing.mp4"}
    assert reasons["hang.mp4"].startswith("timeout") and "no such file" in reasons["missing.mp4"]
    table = read_table(config.output)
    spec = ClipSpec(frames=5, height=32, width=32, policy="windows", stride=6)
    expected = direct_tokens(bundle, {u: u for u in good.values()}, spec)  # manifest keys are the uris
    assert table.num_rows == card.clips == len(expected) > len(good)  # several windows per video
    assert card.files == len(rows) and card.files_failed == 4 and card.files_ok == len(good)
    got = {r["id"]: r["spatial"] + r["temporal"] for r in table.to_pylist()}
    assert got == expected  # the pipeline's tokens are the model's tokens for the same clips
    windows = table.select(["source", "window", "clip_start"]).to_pylist()
    assert all(w["clip_start"] == 6 * w["window"] for w in windows)

    again = tokenize_dataset(config)  # a finished corpus: nothing to redo
    assert again.shards_skipped == again.shards and again.clips == card.clips

    examples = list(CorpusDataset(config.output, words=True))
    assert len(examples) == card.clips and examples[0]["ids"].shape == (8 + 16,)
    assert examples[0]["words"][0].startswith("s") and examples[0]["words"][-1].startswith("t")
    rows = ray_dataset(config.output, words=True).take_all()
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in examples)
    assert all(len(r["words"]) == 8 + 16 for r in rows)


def test_s3_corpus_read_back_with_plain_pyarrow(ray_cluster, s3_endpoint: str, s3_bucket: str, dataset: Path,
                                                tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    for path in dataset.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), s3_bucket, f"ucf/{path.relative_to(dataset).as_posix()}")
    # one listed file is junk, one is listed but absent (both must show up as errors)
    s3.put_object(Bucket=s3_bucket, Key="ucf/Bikes/v_Bikes_g09_c01.avi", Body=os.urandom(3000))
    listing = (dataset / "trainlist01.txt").read_text() + "Bikes/v_Bikes_g09_c01.avi 2\nBikes/v_Bikes_g10_c01.avi 2\n"
    s3.put_object(Bucket=s3_bucket, Key="ucf/trainlist01.txt", Body=listing.encode())
    torch.manual_seed(1)
    bundle = f"s3://{s3_bucket}/bundles/tiny"
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), bundle)

    output = f"s3://{s3_bucket}/corpora/ucf-train"
    config = TokenizeJobConfig.from_dict({
        "source": {"kind": "ucf101", "root": f"s3://{s3_bucket}/ucf", "split": "train"}, "output": output,
        "encode": {"bundle": bundle, "batch_size": 2}, "files_per_shard": 2, "progress": False,
        "decode_timeout_s": 30.0,
    })
    card = tokenize_dataset(config)

    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint.split("://")[1], scheme="http",
                           access_key="testing", secret_key="testing", region="us-east-1")
    table = pq.read_table(f"{s3_bucket}/corpora/ucf-train/data", filesystem=fs)
    errors = pq.read_table(f"{s3_bucket}/corpora/ucf-train/errors", filesystem=fs)
    train_keys = [line.split()[0] for line in (dataset / "trainlist01.txt").read_text().splitlines()]
    assert table.num_rows == len(train_keys) == card.clips  # one centre clip per decoded video
    assert sorted(errors.column("source").to_pylist()) == ["Bikes/v_Bikes_g09_c01.avi", "Bikes/v_Bikes_g10_c01.avi"]
    assert card.files == table.num_rows + errors.num_rows  # every listed file accounted for
    assert set(table.column("tokenizer").to_pylist()) == {sweettok.bundle.read_manifest(bundle)["hash"]}
    assert set(table.column("label_name").to_pylist()) == {"Bikes", "CarphonePristine"}
    expected = direct_tokens(bundle, {k: str(dataset / k) for k in train_keys}, ClipSpec(frames=5, height=32, width=32))
    assert {r["id"]: r["spatial"] + r["temporal"] for r in table.to_pylist()} == expected
    assert CorpusCard.load(output).clips == card.clips
    assert ray_dataset(output).count() == card.clips  # Ray workers read the S3 corpus too
