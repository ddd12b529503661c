"""`sweettok codebook build|info`: the real command line, settings from YAML, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CAPTIONS = Path(__file__).parents[2] / "sweettok" / "data" / "captions.txt"


def sweettok(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweettok_platform.cli", *args], capture_output=True, text=True)


def test_build_from_captions_then_info(tmp_path):
    settings = tmp_path / "codebook.yaml"
    settings.write_text("codebook:\n  min_freq: 2\n  min_words_per_branch: 8\n  max_words_per_branch: 40\n")
    out = tmp_path / "cb"
    r = sweettok("codebook", "build", "--corpus", str(CAPTIONS), "-o", str(out), "--config", str(settings),
                 "--set", "codebook.window=4")
    assert r.returncode == 0, r.stderr
    assert "spatial" in r.stdout and "co-occurrence" in r.stdout
    meta = json.loads((out / "codebook.json").read_text())
    assert meta["graph"]["window"] == 4 and meta["source"]["min_freq"] == 2
    assert 8 <= meta["sizes"]["spatial"] <= 40 and 8 <= meta["sizes"]["temporal"] <= 40
    vocab = json.loads((out / "vocab.json").read_text())
    assert {"word", "pos", "frequency"} <= set(vocab[0]) and len(vocab) == meta["sizes"]["spatial"] + meta["sizes"]["temporal"]

    r = sweettok("codebook", "info", str(out), "--words", "3")
    assert r.returncode == 0, r.stderr
    assert meta["hash"] in r.stdout and "temporal:" in r.stdout


def test_build_errors_are_one_readable_line(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    r = sweettok("codebook", "build", "--corpus", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("sweettok codebook: error: corpus") and "is empty" in r.stderr
    r = sweettok("codebook", "info", str(tmp_path))
    assert r.returncode == 1 and "holds no language codebook" in r.stderr
