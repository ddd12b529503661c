"""A short training job through the CLI, as a user runs it on a laptop (no cluster: ``sweettok train`` starts
its own Ray), writes its resolved config, and its output holds no line of Ray's or DeepSpeed's beyond Ray's start
banner: 2 workers, so a line printed per worker or per run shows (the placement-group cleaner's State API warning
once filled the demo's log, 118 times; DeepSpeed's shm-op print and Ray's preemption-watcher error came once per
worker and per run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from ray_nodes import clean_env

pytestmark = pytest.mark.timeout(600)


# Ray's own lines a job started from a laptop prints once: its start banner and the token-auth notice
RAY_START = (r"Started a local Ray instance", r"Token authentication is enabled for this Ray cluster")


def foreign_lines(text: str) -> list[str]:
    """Lines of a job's output not written by the project (``sweettok <component>: ...``, or the final JSON
    result), after Ray's colour codes, its ``(Actor pid=N)`` prefix and ``[repeated Nx ...]`` suffix are
    removed, and other than Ray's start lines."""
    out = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():
        line = re.sub(r"^\(\w+ pid=\d+(, ip=[\d.]+)?\) ", "", line.strip())
        line = re.sub(r"\s*\[repeated \d+x across cluster\]", "", line)
        if line and not line.startswith(("sweettok ", "{")) and not any(re.search(p, line) for p in RAY_START):
            out.append(line)
    return out


def test_foreign_lines_are_found_behind_rays_prefixes():
    text = ("2026-12-05 06:59:01,526\tINFO worker.py:2029 -- Started a local Ray instance.\n"
            "\x1b[36m(RayTrainWorker pid=12069)\x1b[0m sweettok train: step 1\n"
            "(RayTrainWorker pid=9706) DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully"
            " [repeated 2x across cluster]\n"
            "(TrainController pid=9636, ip=10.0.0.2) [2026-12-05 06:57:18,448 E 9636 9669] core_worker.cc:2465: Actor\n"
            '{"job": "quiet"}\n')
    assert foreign_lines(text) == ["DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully",
                                   "[2026-12-05 06:57:18,448 E 9636 9669] core_worker.cc:2465: Actor"]


def test_a_short_training_job_is_quiet_and_records_its_config(real_videos, tmp_path):
    spec = {"name": "quiet", "storage_path": str(tmp_path / "store"), "log_dir": str(tmp_path / "logs"),
            "model": {"preset": "tiny"}, "stages": ["stage0"], "stage_preset": "tiny",
            "stage_overrides": {"stage0": {"steps": 2}}, "num_workers": 2, "log_every": 1,
            "dataset": {"source": {"paths": [str(real_videos[0])]}, "max_clips": 4}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    env = clean_env()
    run = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "train", "--config", str(tmp_path / "job.yaml"),
                          "--set", "stage_overrides.stage0.batch_size=2"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=500)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "step 2/2" in out and foreign_lines(out) == [], out[-3000:]  # per worker, per run: none
    recorded = json.loads((tmp_path / "store" / "quiet-stage0" / "job.json").read_text())
    assert recorded["job"]["dataset"]["source"] == {**recorded["job"]["dataset"]["source"], "kind": "paths",
                                                    "paths": [str(real_videos[0])]}
    assert recorded["stage"]["name"] == "stage0" and recorded["stage"]["steps"] == 2
    assert recorded["stage"]["batch_size"] == 2  # --set reached the resolved stage
