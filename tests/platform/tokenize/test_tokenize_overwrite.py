"""``tokenize --overwrite`` deletes only a corpus this tool wrote, only its files, never an input (issue 12.3)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from sweettok_platform.tokenize.overwrite import UnsafeOverwriteError, clear_corpus
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.tokenize.samples import make_sample_dataset


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("in") / "videos"
    make_sample_dataset(root, [p for p in real_videos if p.name == "bikes.mp4"], layout="folders", per_class=2,
                        frames=6)
    return root


def _config(root: str, output: str) -> TokenizeJobConfig:
    return TokenizeJobConfig.from_dict({"source": {"kind": "folders", "root": root}, "output": output,
                                     "encode": {"preset": "tiny"}, "overwrite": True, "progress": False})


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_output_equal_to_the_input_root_or_above_it_is_refused(videos: Path) -> None:
    before = _files(videos.parent)
    for output in (videos, videos.parent, Path(str(videos) + "/")):
        with pytest.raises(UnsafeOverwriteError, match="holds this job's input"):
            tokenize_dataset(_config(str(videos), str(output)))
    assert _files(videos.parent) == before  # not one input deleted


def test_a_directory_that_is_not_a_corpus_is_refused(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(UnsafeOverwriteError, match="not a corpus"):
        tokenize_dataset(_config(str(videos), str(out)))
    assert (out / "thesis.tex").read_text() == "years of work"


def test_only_the_corpus_own_files_are_deleted(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    for name in ("plan.json", "corpus.json", "data/part-00000.parquet", "data/.part-00001.parquet.ab12.tmp",
                 "errors/part-00000.parquet", "README.md", "data/notes.txt", "extra/part-00000.parquet"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    assert clear_corpus(str(out), [str(tmp_path / "videos")]) == 5
    assert _files(out) == ["README.md", "data/notes.txt", "extra/part-00000.parquet"]
    assert clear_corpus(str(tmp_path / "absent"), []) == 0  # nothing there: nothing to do


def test_s3_bucket_and_input_prefixes_are_refused(s3_bucket: str) -> None:
    s3 = boto3.client("s3")
    for key in ("videos/a/1.mp4", "videos/a/2.mp4", "other-team/model.bin"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"data")
    root = f"s3://{s3_bucket}/videos"
    for output in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/", root, f"s3://{s3_bucket}//videos/"):
        with pytest.raises(UnsafeOverwriteError):
            clear_corpus(output, [root, f"{root}/a/1.mp4"])
    with pytest.raises(UnsafeOverwriteError, match="not a corpus"):
        clear_corpus(f"s3://{s3_bucket}/other-team", [root])
    for key in ("corpus/plan.json", "corpus/data/part-00000.parquet", "corpus/keep.txt"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    assert clear_corpus(f"s3://{s3_bucket}/corpus", [root]) == 2
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"] if not o["Key"].endswith("/"))
    assert left == ["corpus/keep.txt", "other-team/model.bin", "videos/a/1.mp4", "videos/a/2.mp4"]
