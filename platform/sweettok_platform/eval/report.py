"""``card.md`` beside ``eval.json``: the headline numbers, a PSNR histogram, and reconstruction strips of
the best, median and worst clips by PSNR (re-decoded and reconstructed here, in the driver)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from sweettok import storage
from sweettok_platform.eval.config import EvalConfig
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.core.sources import open_item
from sweettok_platform.eval.metrics import METRICS


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def histogram_png(result: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5, 3))
    plt.hist([c["psnr"] for c in result["per_clip"]], bins=min(30, max(5, len(result["per_clip"]) // 2)))
    plt.axvline(result["floor"]["psnr"], color="C3", ls="--", label="mean-colour floor")
    plt.xlabel("PSNR per clip (dB)")
    plt.ylabel("clips")
    plt.legend(fontsize=7)
    data = _png(fig)
    plt.close(fig)
    return data


def picks(per_clip: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, clip row) for the best, median and worst clips by PSNR (ties broken by key and start)."""
    ranked = sorted(per_clip, key=lambda c: (-c["psnr"], c["key"], c["clip_start"]))
    return [("best", ranked[0]), ("median", ranked[len(ranked) // 2]), ("worst", ranked[-1])]


def strips_png(config: EvalConfig, result: dict[str, Any], spec: ClipSpec) -> bytes:
    """Input (top) and reconstruction (bottom) of the picked clips, frames left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from einops import rearrange

    from sweettok import from_uint8
    from sweettok_platform.eval.scorer import ClipScorer, ScorerConfig

    scorer = ClipScorer(ScorerConfig(bundle=config.bundle, preset=config.preset, seed=config.seed,
                                     teacher_only=config.teacher_only))
    chosen = picks(result["per_clip"])
    fig, axes = plt.subplots(len(chosen), 1, figsize=(min(2 + spec.frames * 1.2, 24), 2.6 * len(chosen)))
    for ax, (label, row) in zip(np.atleast_1d(axes), chosen):
        opened = open_item(row["uri"], spec, name=row["key"])
        clip = next(c for c in opened.clips(0, len(opened)) if c.start == row["clip_start"])
        real = rearrange(torch.from_numpy(np.ascontiguousarray(clip.frames)), "t h w c -> 1 c t h w")
        _, fake = scorer.reconstruct(from_uint8(real).to(scorer.device))
        image = torch.cat([rearrange(x[0].cpu(), "c t h w -> h (t w) c") for x in (real, fake)], 0)
        ax.imshow(image.numpy(), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{label}: {row['key']} @ frame {row['clip_start']}  PSNR {row['psnr']:.2f} dB  "
                     f"SSIM {row['ssim']:.3f}  (top: input, bottom: reconstruction)", fontsize=8)
    data = _png(fig)
    plt.close(fig)
    return data


def write_card(config: EvalConfig, result: dict[str, Any], spec: ClipSpec) -> None:
    """card.md (+ psnr_hist.png, strips.png) at ``config.output``."""
    out = config.output
    storage.write_bytes(storage.join(out, "psnr_hist.png"), histogram_png(result))
    what = "the teacher alone (its own codes)" if config.teacher_only else "the tokenizer (encode -> decode_ids)"
    lines = [
        "# Evaluation card", "",
        f"- Tokenizer: `{config.bundle or 'preset:' + str(config.preset)}` (hash `{result['bundle_hash']}`); scored: {what}.",
        f"- Source: {config.source.kind} `{config.source.root}` (split {config.source.split}); "
        f"{result['clips']} clips of {spec.frames}x{spec.height}x{spec.width} ({spec.policy}) from {result['files']} "
        f"files, {len(result['errors'])} errors.", "",
        "| metric | value |", "|---|---|",
        f"| PSNR (dB) | {result['psnr']:.3f} |", f"| SSIM | {result['ssim']:.4f} |",
        f"| mean-colour floor PSNR / SSIM | {result['floor']['psnr']:.3f} / {result['floor']['ssim']:.4f} |",
    ]
    for metric in METRICS:
        if metric in result:
            lines.append(f"| {metric} | {result[metric]:.4f} |")
    lines += [f"| tokens per clip | {result['tokens_per_clip']} |", f"| bits per pixel | {result['bits_per_pixel']:.5f} |"]
    for branch, used in result["codes_used"].items():
        lines.append(f"| {branch} codes used | {used} / {result['codebook_size'][branch]} "
                     f"(perplexity {result['perplexity'][branch]:.1f}) |")
    lines += [""] + [f"- {m}: {note}" for m, note in result["notes"].items()]
    lines += ["", "![PSNR per clip](psnr_hist.png)", ""]
    if config.strips:
        storage.write_bytes(storage.join(out, "strips.png"), strips_png(config, result, spec))
        lines += ["Best, median and worst clips by PSNR:", "", "![reconstructions](strips.png)", ""]
    if result["errors"]:
        lines += ["## Errors", ""] + [f"- `{e['source']}`: {e['reason']}" for e in result["errors"][:50]]
    lines += ["", "Conventions: see `conventions` in eval.json.", ""]
    storage.write_bytes(storage.join(out, "card.md"), "\n".join(lines).encode())
