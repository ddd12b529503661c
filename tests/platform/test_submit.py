"""Job submission as a user does it: a real head started with ``ray start --head`` (token authentication on,
as Ray 2.60 starts it), ``sweettok submit`` of a tokenize job spec with relative paths from another working
directory, its logs followed, the corpus read back; the same to an S3-compatible server (moto on 127.0.0.1) that
only the submitter's environment names; a spec naming a path that does not exist, or (for a remote cluster) a
local path its nodes cannot see, is refused before anything is submitted; every job kind is told apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweettok_platform.submit import SubmitError, job_kind, resolve_paths, runtime_env, submit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def head(local_cluster):
    """The job API of the session's ``ray start`` cluster (its own ports and temp dirs, apart from the test
    session's in-process cluster). No storage settings on it: a job sees S3 only through what `sweettok submit`
    forwards."""
    return local_cluster.dashboard


def test_the_tiny_tokenize_spec_runs_as_submitted_from_another_checkout(head, tmp_path, monkeypatch):
    import shutil

    project = tmp_path / "project"  # a copy of the committed spec and its data: not this checkout's directory
    shutil.copytree(REPO / "jobs", project / "jobs", ignore=shutil.ignore_patterns("*-paper.yaml"))
    monkeypatch.chdir(project)
    out = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "submit", "jobs/tokenize-local-tiny.yaml",
                          "--address", head, "--follow"], capture_output=True, text=True, timeout=600, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "sweettok tokenize: done:" in out.stdout + out.stderr  # the job's own log line, followed
    from sweettok_platform.core.reader import read_table

    table = read_table(str(project / "demo_out" / "corpus-tiny"))  # where the spec's relative path points
    assert table.num_rows >= 6 and len(set(table.column("label_name").to_pylist())) == 3
    listed = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "job", "list", "--address", head],
                            capture_output=True, text=True, timeout=120)
    assert '"status": "SUCCEEDED"' in listed.stdout, listed.stdout + listed.stderr


def test_paths_the_cluster_cannot_see_are_refused_before_submission(tmp_path):
    spec = tmp_path / "tokenize.yaml"
    spec.write_text(yaml.safe_dump({"source": {"kind": "ucf101", "root": "missing/ucf"}, "output": "corpus",
                                    "encode": {"preset": "tiny"}}))
    with pytest.raises(SubmitError, match="source.root: .*missing/ucf does not exist"):
        submit(str(spec), "http://127.0.0.1:1", base=str(tmp_path))  # refused before any connection
    (tmp_path / "ucf").mkdir()
    spec.write_text(yaml.safe_dump({"source": {"kind": "ucf101", "root": "ucf"}, "output": "s3://bucket/corpus",
                                    "encode": {"preset": "tiny"}}))
    with pytest.raises(SubmitError, match="source.root: .* cluster's nodes cannot read; put it on S3"):
        submit(str(spec), "http://head.example:8265", base=str(tmp_path))


def test_a_one_stage_training_spec_runs_as_submitted(head, real_videos, tmp_path):
    import json
    import shutil

    project = tmp_path / "project"
    (project / "videos").mkdir(parents=True)
    for video in real_videos[:2]:
        shutil.copyfile(video, project / "videos" / video.name)
    spec = {"name": "t", "storage_path": "store", "log_dir": "logs", "model": {"preset": "tiny"},
            "stages": ["stage0"], "stage_preset": "tiny", "stage_overrides": {"stage0": {"steps": 2}},
            "checkpoint_every": 2, "dataset": {"source": {"paths": ["videos/*.mp4"]}, "max_clips": 8}, "num_workers": 2}
    (project / "train.yaml").write_text(yaml.safe_dump(spec))
    out = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "submit", "train.yaml", "--address", head,
                          "--follow"], capture_output=True, text=True, timeout=900, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    final = json.loads((project / "store" / "t-stage0" / "final.json").read_text())  # under the user's directory
    assert final["steps"] == 2 and Path(final["checkpoint"]).is_dir()


def test_a_tokenize_to_s3_runs_as_submitted_with_the_submitters_storage_settings(head, s3_bucket, tmp_path):
    import shutil

    from sweettok_platform.core.reader import read_table

    project = tmp_path / "project"
    shutil.copytree(REPO / "jobs" / "data" / "ucf-tiny", project / "ucf")
    spec = yaml.safe_load((REPO / "jobs" / "tokenize-local-tiny.yaml").read_text())
    spec["source"]["root"], spec["output"] = "ucf", f"s3://{s3_bucket}/corpus"
    del spec["encode"]["preset"]  # the shipped bundle, which the job loads from Ray's temporary copy of the package
    spec["clips"] = {"policy": "center"}  # one clip per file: the shipped bundle is the `small` preset
    (project / "tokenize.yaml").write_text(yaml.safe_dump(spec))
    secret = f"secret-{os.getpid()}-{tmp_path.name}"  # moto takes any secret; this one must never be printed
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": secret}
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")  # the head was started without it
    out = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "submit", "tokenize.yaml", "--address", head,
                          "--follow"], capture_output=True, text=True, timeout=600, cwd=project, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert secret not in out.stdout + out.stderr
    from sweettok_platform.core.corpus import CorpusCard
    from sweettok_platform.core.bundles import default_bundle

    table = read_table(f"s3://{s3_bucket}/corpus")
    card = CorpusCard.load(f"s3://{s3_bucket}/corpus")
    assert card.files_ok == 6 and table.num_rows == 6 and len(set(table.column("label_name").to_pylist())) == 3
    assert len(set(table.column("id").to_pylist())) == table.num_rows
    # durable provenance: the shipped bundle by its package name, no runtime temp path
    assert card.bundle == "package://sweettok_platform/bundles/" + Path(default_bundle()).name, card.bundle
    assert card.words_file == card.bundle + "/vocab.json"
    assert card.tokenizer == json.loads((Path(default_bundle()) / "bundle.json").read_text())["hash"]


def test_every_job_kind_is_told_apart_and_its_outputs_land_in_the_submitters_directory(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "store" / "g-ar" / "step_00000010").mkdir(parents=True)
    specs = {"train": {"name": "t", "stages": ["stage0"], "dataset": {"source": {"paths": ["corpus"]}}, "storage_path": "s"},
             "tokenize": {"source": {"root": "corpus"}, "output": "out", "encode": {"preset": "tiny"}},
             "eval": {"source": {"root": "corpus"}, "output": "out", "preset": "tiny"},
             "ar-train": {"name": "g", "storage_path": "store", "corpus": "corpus"},
             "ar-sample": {"checkpoint": "store/g-ar/step_00000010", "classes": [0], "output": "samples"}}
    for kind, spec in specs.items():
        assert job_kind(spec) == kind
        resolved = resolve_paths(spec, kind, tmp_path, local_cluster=True, shared_paths=[])
        outputs = {"train": ["storage_path", "log_dir"], "tokenize": ["output"], "eval": ["output"],
                   "ar-train": ["storage_path", "log_dir", "corpus"], "ar-sample": ["checkpoint", "output"]}[kind]
        for key in outputs:  # log_dir is not in the train / ar-train specs: its default is resolved here too
            assert resolved[key].startswith(str(tmp_path) + os.sep), (kind, key, resolved[key])
    assert resolve_paths(specs["ar-train"], "ar-train", tmp_path, local_cluster=True,
                         shared_paths=[])["log_dir"] == str(tmp_path / "runs" / "g-ar")
    with pytest.raises(SubmitError, match="checkpoint: .*missing does not exist"):
        resolve_paths({**specs["ar-sample"], "checkpoint": "missing"}, "ar-sample", tmp_path, local_cluster=True,
                      shared_paths=[])
    with pytest.raises(SubmitError, match="cannot tell"):
        job_kind({"name": "x"})
    # storage settings: those set are forwarded, none with forward_storage=False
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    env = runtime_env(str(tmp_path))["env_vars"]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and env["AWS_REGION"] == "eu-west-3"
    assert "AWS_SESSION_TOKEN" not in env
    assert not any(k.startswith("AWS_") for k in runtime_env(str(tmp_path), forward_storage=False)["env_vars"])
