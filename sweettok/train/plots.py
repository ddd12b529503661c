"""Figures from training: loss curves per stage and original-vs-reconstruction strips (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from einops import rearrange  # noqa: E402
from torch import Tensor  # noqa: E402

if TYPE_CHECKING:
    from sweettok.model import SweetTokenizer

# terms drawn when present, besides the total "loss"
LOSS_TERMS = ("ce", "ce_spatial", "ce_temporal", "vq", "mse", "lpips", "gan", "disc_loss")


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


def plot_metrics(metrics_jsonl: str, out_png: str) -> None:
    """One panel per stage: the total loss and each loss term present, against the step."""
    stages = read_metrics(metrics_jsonl)
    if not stages:
        raise ValueError(f"{metrics_jsonl} holds no metrics rows")
    fig, axes = plt.subplots(1, len(stages), figsize=(4.5 * len(stages), 3.5), squeeze=False)
    for ax, (stage, rows) in zip(axes[0], stages.items()):
        steps = [r["step"] for r in rows]
        for key in ("loss", *LOSS_TERMS):
            if any(key in r for r in rows):
                xs = [s for s, r in zip(steps, rows) if key in r]
                ax.plot(xs, [r[key] for r in rows if key in r], label=key, lw=2 if key == "loss" else 1)
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
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
    # rows: (clip, original|recon), columns: frames
    grid = torch.stack([x, shown], dim=1).clamp(-0.5, 0.5) + 0.5  # (b, 2, c, t, h, w)
    image = rearrange(grid, "b r c t h w -> (b r h) (t w) c").cpu().numpy()
    fig = plt.figure(figsize=(max(2.0, image.shape[1] / 40), max(2.0, image.shape[0] / 40)))
    plt.imshow(image)
    plt.axis("off")
    plt.title("original (upper) / reconstruction (lower row of each pair)", fontsize=8)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return recon
