"""Codebook usage statistics, reported per branch during training."""

from __future__ import annotations

import torch
from torch import Tensor


def codebook_stats(ids: Tensor, size: int) -> dict[str, float]:
    """Usage (fraction of the ``size`` codes hit by ``ids``) and perplexity (exp of the id entropy)."""
    if size <= 0:
        raise ValueError(f"codebook size must be positive, got {size}")
    flat = ids.reshape(-1).long()
    if flat.numel() == 0:
        return {"usage": 0.0, "perplexity": 0.0, "codes_used": 0}
    if flat.min() < 0 or flat.max() >= size:
        raise ValueError(f"ids out of range [0, {size}): got [{int(flat.min())}, {int(flat.max())}]")
    counts = torch.bincount(flat, minlength=size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"usage": used / size, "perplexity": float(entropy.exp()), "codes_used": used}
