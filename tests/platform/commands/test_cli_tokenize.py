"""``sweettok tokenize``: a job killed half-way and rerun gives every clip exactly once; readable errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import decord
import pyarrow.parquet as pq
import pytest

from sweettok_platform.cli import main
from sweettok_platform.core.corpus import clip_id
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.tokenize.samples import make_sample_dataset
from sweettok_platform.core.media import ClipSpec, clip_starts

from conftest import REPO  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("folders")
    videos = [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")]
    make_sample_dataset(root, videos, layout="folders", per_class=3, frames=20)
    return root


def test_killed_job_rerun_has_every_clip_once(ray_cluster, dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "corpus"
    flags = ["--source", "folders", "--root", str(dataset), "-o", str(output), "--preset", "tiny",
             "--policy", "windows", "--stride", "4", "--files-per-shard", "1", "--batch-size", "2",
             "--no-progress", "--set", "decode_concurrency=1"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    job = subprocess.Popen([sys.executable, "-m", "sweettok_platform.cli", "tokenize", *flags], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    data = output / "data"
    deadline = time.time() + 180
    try:
        while not (data.exists() and any(p.name.startswith("part-") for p in data.iterdir())):
            assert job.poll() is None, f"the job ended before writing a shard: {job.stderr.read().decode()[-2000:]}"
            assert time.time() < deadline, "no shard written within 180 s"
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the driver dies with the job half done
        job.wait()
    done_at_kill = len([p for p in data.iterdir() if p.name.startswith("part-")])
    assert 1 <= done_at_kill < 9

    config = TokenizeJobConfig.from_dict({
        "source": {"kind": "folders", "root": str(dataset)}, "output": str(output),
        "encode": {"preset": "tiny", "batch_size": 2}, "clips": {"policy": "windows", "stride": 4},
        "files_per_shard": 1, "decode_concurrency": 1, "progress": False,
    })
    card = tokenize_dataset(config)
    assert card.shards_skipped >= done_at_kill and card.shards_done == card.shards == 9

    spec = ClipSpec(frames=5, height=32, width=32, policy="windows", stride=4)
    expected = []
    for path in sorted(dataset.rglob("*.mp4")):
        key = path.relative_to(dataset).as_posix()
        expected += [clip_id(key, s) for s in clip_starts(len(decord.VideoReader(str(path))), spec, key)]
    ids = pq.read_table(data, columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == card.clips  # no row twice
    assert set(ids) == set(expected)  # no row missing


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["tokenize", "--source", "folders", "--root", str(tmp_path / "nope"), "-o", str(tmp_path / "o"),
                 "--preset", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("sweettok tokenize: error: no such directory") and "\n" not in err
    code = main(["tokenize", "--root", str(tmp_path), "--preset", "tiny"])
    assert code == 1 and "output is empty" in capsys.readouterr().err
    code = main(["tokenize", "--root", str(tmp_path), "-o", "x", "--preset", "tiny", "--set", "encode.colour=1"])
    assert code == 1 and "encode.colour: unknown setting; EncodeConfig takes" in capsys.readouterr().err
    code = main(["tokenize", "--root", str(tmp_path), "-o", "x", "--preset", "tiny", "--set", "encode.batch_size=many"])
    assert code == 1 and "encode.batch_size: expected an integer, got 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("job", sorted((REPO / "jobs").glob("tokenize-*.yaml")), ids=lambda p: p.name)
def test_job_specs_parse(job: Path) -> None:
    import yaml

    config = TokenizeJobConfig.from_dict(yaml.safe_load(job.read_text()))
    assert config.output and config.source.root and (config.encode.bundle or config.encode.preset)


def test_rerun_with_another_plan_is_refused(tmp_path: Path) -> None:
    from sweettok_platform.core.corpus import check_plan

    plan = {"items_sha256": "abc", "files_per_shard": 4, "tokenizer": "h1"}
    assert check_plan(str(tmp_path), plan) is False  # recorded
    assert check_plan(str(tmp_path), dict(plan)) is True  # same plan: resume
    with pytest.raises(ValueError, match="different plan .*files_per_shard, tokenizer"):
        check_plan(str(tmp_path), {**plan, "files_per_shard": 8, "tokenizer": "h2"})
