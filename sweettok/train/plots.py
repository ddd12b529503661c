"""Figures from training: loss curves per stage and original-vs-reconstruction strips (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from einops import rearrange  # noqa: E402
from torch import Tensor  # noqa: E402

if TYPE_CHECKING:
    from sweettok.model import SweetTokenizer

# terms drawn when present, besides the total "loss"
LOSS_TERMS = ("ce", "ce_spatial", "ce_temporal", "vq", "mse", "lpips", "convnext", "entropy", "gan",
              "feature_matching", "disc_loss", "lecam")


def read_metrics(metrics_jsonl: str) -> dict[str, list[dict]]:
    """JSONL of per-step metrics -> rows grouped by ``stage``, ordered by ``step``."""
    path = Path(metrics_jsonl)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {metrics_jsonl}")
    stages: dict[str, list[dict]] = defaultdict(list)
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "stage" not in row or "step" not in row:
            raise ValueError(f"{metrics_jsonl}:{n}: a metrics row needs 'stage' and 'step', got {sorted(row)}")
        stages[str(row["stage"])].append(row)
    for rows in stages.values():
        rows.sort(key=lambda r: r["step"])
    return dict(sorted(stages.items()))


def spans_decades(values: list[float], ratio: float = 10.0) -> bool:
    """Whether a positive series covers ``ratio`` or more between its smallest and largest value."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= ratio


def plot_metrics(metrics_jsonl: str, out_png: str) -> dict[str, list[tuple[str, bool]]]:
    """One panel per (stage, term): the total loss and each loss term present, against the step, each on its
    own axis so no term flattens another; a positive term spanning a decade or more is drawn on a log scale.
    Rows are stages, columns the stage's terms. Returns the panels drawn: {stage: [(term, log scale)]}."""
    stages = read_metrics(metrics_jsonl)
    if not stages:
        raise ValueError(f"{metrics_jsonl} holds no metrics rows")
    keys = {stage: [k for k in ("loss", *LOSS_TERMS) if any(k in r for r in rows)] for stage, rows in stages.items()}
    cols = max(len(k) for k in keys.values())
    panels: dict[str, list[tuple[str, bool]]] = {stage: [] for stage in stages}
    fig, axes = plt.subplots(len(stages), cols, figsize=(2.6 * cols, 2.2 * len(stages)), squeeze=False)
    for row_axes, (stage, rows) in zip(axes, stages.items()):
        for ax in row_axes[len(keys[stage]):]:
            ax.axis("off")
        for i, (ax, key) in enumerate(zip(row_axes, keys[stage])):
            xs = [r["step"] for r in rows if key in r]
            ys = [float(r[key]) for r in rows if key in r]
            ax.plot(xs, ys, lw=1.2, color="C0" if key == "loss" else f"C{i}")
            log = spans_decades(ys)
            if log:
                ax.set_yscale("log")
            panels[stage].append((key, log))
            ax.set_title(f"{stage}: {key}{' (log)' if log else ''}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel(stage, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=7)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return panels


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of one shape (8-bit pixels, peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def labelled_strip(rows: list[tuple[str, np.ndarray, np.ndarray | None]], out_png: str, title: str = "") -> None:
    """Rows of frames, each (t, h, w, c) uint8, one labelled row each, frames left to right; a row given a
    reference (the third item) gets its PSNR against it in its label. Small frames are enlarged to >= 64 px."""
    h = rows[0][1].shape[1]
    scale = max(1, 64 // h)
    image = np.concatenate([np.concatenate(list(f), 1).repeat(scale, 0).repeat(scale, 1) for _, f, _ in rows], 0)
    labels = [label if ref is None else f"{label}\nPSNR {psnr_uint8(frames, ref):.2f} dB" for label, frames, ref in rows]
    fig = plt.figure(figsize=(max(2.0, image.shape[1] / 60 + 1.4), max(2.0, image.shape[0] / 60)))
    plt.imshow(image, interpolation="nearest")
    plt.yticks([h * scale * (i + 0.5) for i in range(len(rows))], labels, fontsize=7)
    plt.xticks([])
    if title:
        plt.title(title, fontsize=8)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100, bbox_inches="tight")
    plt.close(fig)


@torch.no_grad()
def reconstruction_strip(model: SweetTokenizer, x: Tensor, out_png: str, max_clips: int = 4) -> Tensor:
    """Save each clip's frames (top) above its reconstruction ``model.decode(model.quantize(x))`` (below).

    x: (b, c, t, h, w) in [-0.5, 0.5]. Returns the reconstruction (b, c, t, h, w).
    """
    was_training = model.training
    model.eval()
    try:
        latents = model.quantize(x)
        recon = model.decode(latents.zq_s, latents.zq_t).float()
    finally:
        model.train(was_training)
    x = x[:max_clips].float()
    shown = recon[:max_clips]

    def frames(v: Tensor) -> np.ndarray:  # (c, t, h, w) in [-0.5, 0.5] -> (t, h, w, c) uint8
        return rearrange(((v.clamp(-0.5, 0.5) + 0.5) * 255).round().to(torch.uint8), "c t h w -> t h w c").cpu().numpy()

    rows: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for i in range(x.shape[0]):  # per clip: its input row, then its decoded row with the PSNR against it
        original = frames(x[i])
        rows += [(f"input {i}", original, None), (f"decoded {i}", frames(shown[i]), original)]
    labelled_strip(rows, out_png, "input / decoded pairs (PSNR of each decoded row against its input)")
    return recon
