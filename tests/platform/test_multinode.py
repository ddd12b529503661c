"""The platform on a real multi-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``,
each node with its own temp dir and ports; see ``ray_nodes.py``), its processes stopped by their PIDs:

- tokenize with the non-head node killed mid-run finishes on the survivor, every clip exactly once (checked
  against decord's frame counts), nothing left under ``staging/``; the encode pool is capped so that the
  survivor keeps a CPU for decoding;
- a job that cannot make progress prints one line naming what waits, then stops naming the cause;
- training places its workers on both nodes (``placement_strategy: SPREAD``); when the non-head node is lost
  after a checkpoint is committed, the run resumes from the newest committed checkpoint without repeating a step.

The cluster is the session's ``local_cluster`` (conftest.py), shared with ``test_submit.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ray_nodes import LocalCluster

pytestmark = pytest.mark.timeout(900)
CLIP_FRAMES = 5  # the tiny preset


@pytest.fixture(scope="module")
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The session's ``ray start`` cluster: a head of 4 CPUs; tests add 2-CPU nodes."""
    return local_cluster


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory, real_videos) -> Path:
    """6 real 140-frame videos: 136 windows of 5 frames each, so each shard leaves its decode task in 2 parts."""
    from sweettok_platform.tokenize.samples import make_sample_dataset

    root = tmp_path_factory.mktemp("multinode") / "videos"
    make_sample_dataset(root, [p for p in real_videos if p.name == "bikes.mp4"], layout="folders", per_class=6,
                        frames=140)
    return root


class Job:
    """A ``sweettok`` command run as a user runs it against the cluster; its output lines collected."""

    def __init__(self, cluster: LocalCluster, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "sweettok_platform.cli", *args], env=cluster.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.reader.join(10)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _spec(tmp_path: Path, **settings) -> str:
    path = tmp_path / f"job-{len(list(tmp_path.glob('job-*')))}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def _parquet(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.parquet")) if directory.is_dir() else []


def test_tokenize_finishes_on_the_survivor_when_a_node_is_lost(cluster, long_videos, tmp_path):
    import decord

    from sweettok_platform.core.reader import read_table

    worker = cluster.add_node(cpus=2)
    out = tmp_path / "corpus"
    spec = _spec(tmp_path, source={"kind": "folders", "root": str(long_videos)}, output=str(out),
                 encode={"preset": "tiny", "concurrency": 2, "batch_size": 32},
                 clips={"policy": "windows", "stride": 1}, files_per_shard=1, decode_timeout_s=120,
                 stall_s=30, stall_fail_s=400)
    job = Job(cluster, "tokenize", "--config", spec)
    deadline = time.monotonic() + 300
    while not (_parquet(out / "data") or _parquet(out / "staging")) and job.proc.poll() is None:
        assert time.monotonic() < deadline, job.text[-3000:]
        time.sleep(0.2)
    written_at_kill = len(_parquet(out / "data"))
    worker.stop(kill=True)  # the node is lost: its raylet and every process of it, SIGKILL
    assert job.wait(600) == 0, job.text[-4000:]
    assert written_at_kill < 6, "the node was lost after the job had finished"
    # the plan: nodes of 4 + 2 CPUs, a pool that leaves 1 CPU if the largest is lost -> one actor
    assert "encode.concurrency 2 -> 1" in job.text, job.text[-3000:]
    table = read_table(str(out))
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids))  # nothing twice
    starts: dict[str, list[int]] = {}
    for source, start in zip(table.column("source").to_pylist(), table.column("clip_start").to_pylist()):
        starts.setdefault(source, []).append(start)
    videos = sorted(long_videos.rglob("*.mp4"))
    assert len(starts) == len(videos)
    for video in videos:  # nothing missing: every window of every file
        frames = len(decord.VideoReader(str(video), num_threads=1))
        assert sorted(starts[video.relative_to(long_videos).as_posix()]) == list(range(frames - CLIP_FRAMES + 1))
    assert not (out / "staging").exists()
    card = json.loads((out / "corpus.json").read_text())
    assert card["shards_done"] == card["shards"] == 6 and card["clips"] == len(ids)


def test_a_job_that_cannot_progress_names_what_it_waits_for_and_stops(cluster, long_videos, tmp_path):
    # an encode actor wanting more CPUs than any node has: with the plan off nothing can ever run
    settings = dict(source={"kind": "folders", "root": str(long_videos)}, output=str(tmp_path / "corpus"),
                    encode={"preset": "tiny", "num_cpus": 5}, files_per_shard=3)
    job = Job(cluster, "tokenize", "--config", _spec(tmp_path, **settings, decode_reserve_cpus=0, stall_s=4,
                                                    stall_fail_s=12))
    assert job.wait(300) == 1, job.text[-3000:]
    warning = next((x for x in job.lines if "no progress for" in x and "warning" in x), None)
    assert warning is not None, job.text[-3000:]
    assert "2 shards not done" in warning and "pending tasks/actors waiting for resources" in warning, warning
    assert "'CPU': 5.0" in warning, warning
    assert "error: stopped: no progress for" in job.text and "stall_fail_s 12" in job.text, job.text[-2000:]
    assert not _parquet(tmp_path / "corpus" / "data")
    # the plan on (default): refused before any worker starts, naming the setting
    job = Job(cluster, "tokenize", "--config", _spec(tmp_path, **settings))
    assert job.wait(120) == 1
    assert "error: encode.concurrency: one encode actor of 5 CPUs leaves no 1 CPU for decode tasks" in job.text, \
        job.text[-2000:]


def test_progress_eta_reads_in_the_largest_sensible_units():
    from sweettok_platform.core.shards import Progress, format_eta

    assert [format_eta(s) for s in (4.4, 59.6, 185, 7620)] == ["4s", "1m00s", "3m05s", "2h07m"]
    progress = Progress(4, lambda line: None)
    progress.start -= 10.0  # one shard of four took 10 s: three more take ~30 s
    from sweettok_platform.core.corpus import ShardStats

    progress.update(ShardStats(shard=0, files=1, clips=5))
    assert progress.line().endswith("ETA 30s")


def test_training_spreads_its_workers_and_resumes_when_a_node_is_lost(cluster, real_videos, tmp_path):
    import re

    if len([n for n in cluster.nodes if n.processes()]) < 2:
        cluster.add_node(cpus=2)  # the node-loss test took the first one
    worker = cluster.nodes[-1]
    steps, every = 12, 2
    spec = _spec(tmp_path, name="spread", storage_path=str(tmp_path / "store"), log_dir=str(tmp_path / "logs"),
                 model={"preset": "tiny"}, stages=["stage0"], stage_preset="tiny",
                 stage_overrides={"stage0": {"steps": steps}}, checkpoint_every=every, num_workers=2, log_every=1,
                 dataset={"source": {"paths": [str(p) for p in real_videos[:2]]}, "max_clips": 8})
    job = Job(cluster, "train", "--config", spec)  # placement_strategy: the default
    first = tmp_path / "store" / "spread-stage0" / f"step_{every:08d}"
    deadline = time.monotonic() + 400
    while not all((first / f"committed_rank{r}").exists() for r in (0, 1)) and job.proc.poll() is None:
        assert time.monotonic() < deadline, job.text[-3000:]
        time.sleep(0.1)
    worker.stop(kill=True)  # a node holding a training worker is lost once a checkpoint is committed
    assert job.wait(600) == 0, job.text[-4000:]
    placement = re.search(r"placement \(SPREAD\): 2 workers on (\d) node\(s\): rank 0 on (\w+), rank 1 on (\w+)",
                          job.text)
    assert placement is not None, job.text[-3000:]
    assert placement.group(1) == "2" and placement.group(2) != placement.group(3)  # before the loss: both nodes
    resumed = re.search(r"resumed from \S+ at step (\d+) \(attempt 1\)", job.text)
    assert resumed is not None, job.text[-3000:]
    at = int(resumed.group(1))
    assert at >= every and at % every == 0  # from a committed checkpoint, at least the one seen before the kill
    executed = [json.loads(x) for x in (tmp_path / "logs" / "stage0" / "executed.jsonl").read_text().splitlines()]
    before = [r["step"] for r in executed if r["attempt"] == 0]
    after = [r["step"] for r in executed if r["attempt"] == 1]
    assert before == list(range(1, len(before) + 1)) and len(before) >= at
    assert after == list(range(at + 1, steps + 1))  # no committed step repeated, none skipped
    assert json.loads((tmp_path / "store" / "spread-stage0" / "final.json").read_text())["steps"] == steps
