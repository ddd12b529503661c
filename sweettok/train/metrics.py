"""Codebook usage statistics for training metrics."""

from __future__ import annotations

import torch
from torch import Tensor


def codebook_stats(ids: Tensor, size: int) -> dict[str, float]:
    """Ids of any shape from a codebook of ``size`` -> usage (fraction of codes used in the batch) and
    perplexity (exp of the entropy of the code histogram; ``size`` when codes are used uniformly)."""
    flat = ids.detach().reshape(-1).long()
    counts = torch.bincount(flat, minlength=size).float()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return {"usage": float((counts > 0).float().mean()), "perplexity": float(entropy.exp())}


def prefixed(stats: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in stats.items()}
