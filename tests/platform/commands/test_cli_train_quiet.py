"""A short training job through the CLI, as a user runs it on a laptop (no cluster: ``sweettok train`` starts
its own Ray), writes its resolved config, and its output holds no repeated Ray-internal line (the
placement-group cleaner's State API warning once filled the demo's log, 118 times)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from ray_nodes import clean_env

pytestmark = pytest.mark.timeout(600)


def repeated_foreign_lines(text: str, limit: int = 3) -> dict[str, int]:
    """Lines not written by the project (``sweettok <component>: ...``), numbers and ids masked, seen ``limit``
    times or more."""
    foreign = [re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", line.strip()) for line in text.splitlines()
               if line.strip() and not line.startswith("sweettok ")]
    return {line: n for line, n in Counter(foreign).items() if n >= limit}


def test_repeated_foreign_lines_are_found():
    text = "sweettok train: step 1\n" * 5 + "(pid=12) Failed to query state 3\n(pid=99) Failed to query state 4\n" * 3
    assert repeated_foreign_lines(text) == {"(pid=#) Failed to query state #": 6}


def test_a_short_training_job_is_quiet_and_records_its_config(real_videos, tmp_path):
    spec = {"name": "quiet", "storage_path": str(tmp_path / "store"), "log_dir": str(tmp_path / "logs"),
            "model": {"preset": "tiny"}, "stages": ["stage0"], "stage_preset": "tiny",
            "stage_overrides": {"stage0": {"steps": 4}}, "num_workers": 1, "log_every": 1,
            "dataset": {"source": {"paths": [str(real_videos[0])]}, "max_clips": 4}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    env = clean_env()
    run = subprocess.run([sys.executable, "-m", "sweettok_platform.cli", "train", "--config", str(tmp_path / "job.yaml"),
                          "--set", "stage_overrides.stage0.batch_size=2"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=500)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "step 4/4" in out and repeated_foreign_lines(out) == {}, out[-3000:]
    recorded = json.loads((tmp_path / "store" / "quiet-stage0" / "job.json").read_text())
    assert recorded["job"]["dataset"]["source"] == {**recorded["job"]["dataset"]["source"], "kind": "paths",
                                                    "paths": [str(real_videos[0])]}
    assert recorded["stage"]["name"] == "stage0" and recorded["stage"]["steps"] == 4
    assert recorded["stage"]["batch_size"] == 2  # --set reached the resolved stage
