"""Loss-curve plots from a metrics JSONL and original-vs-reconstruction strips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sweettok.config import tiny
from sweettok.model import SweetTokenizer
from sweettok.train.plots import plot_metrics, read_metrics, reconstruction_strip


def test_plot_metrics_makes_one_panel_per_stage(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"stage": "stage1", "step": s, "loss": 5 - 0.1 * s, "ce": 4 - 0.1 * s, "vq": 0.2} for s in range(20)]
    rows += [{"stage": "stage3", "step": s, "loss": 1 / (1 + s), "mse": 0.05, "lpips": 0.1} for s in range(20)]
    rows += [{"stage": "stage3", "step": s, "loss": 0.1, "gan": 0.3, "disc_loss": 0.9} for s in range(20, 25)]
    path.write_text("\n".join(json.dumps(r) for r in reversed(rows)) + "\n\n")
    grouped = read_metrics(str(path))
    assert list(grouped) == ["stage1", "stage3"]
    assert [r["step"] for r in grouped["stage3"]] == list(range(25))
    out = tmp_path / "plots" / "loss.png"
    panels = plot_metrics(str(path), str(out))
    # one panel per term, so no term flattens another; stage 3's loss falls from 1 to 0.04 (a decade and more: log)
    assert panels == {"stage1": [("loss", False), ("ce", False), ("vq", False)],
                      "stage3": [("loss", True), ("mse", False), ("lpips", False), ("gan", False),
                                 ("disc_loss", False)]}
    with Image.open(out) as im:
        assert im.width > im.height > 100  # two rows of up to five panels
        assert np.asarray(im.convert("L")).std() > 5  # not blank


def test_a_term_spanning_decades_gets_a_log_axis(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"stage": "stage0", "step": s, "loss": 1.0 - 0.01 * s, "mse": 10.0 ** (-s / 10), "entropy": -4.0 + 0.01 * s}
            for s in range(40)]  # mse falls four decades; entropy is negative (never log)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    panels = plot_metrics(str(path), str(tmp_path / "loss.png"))
    assert panels == {"stage0": [("loss", False), ("mse", True), ("entropy", False)]}


def test_plot_metrics_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        plot_metrics(str(tmp_path / "nothing.jsonl"), str(tmp_path / "x.png"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match="'stage' and 'step'"):
        plot_metrics(str(bad), str(tmp_path / "x.png"))


def test_reconstruction_strip(tmp_path):
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    model.train()
    x = torch.rand(2, 3, 5, 32, 32) - 0.5
    out = tmp_path / "strip.png"
    recon = reconstruction_strip(model, x, str(out))
    assert tuple(recon.shape) == (2, 3, 5, 32, 32) and model.training
    with Image.open(out) as im:
        assert im.width > im.height  # 5 frames wide, 2 clips x 2 rows high
