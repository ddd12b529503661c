"""Sampling ids from an ``ArTransformer``: temperature, top-k, top-p, classifier-free guidance, KV cache.

Both paths draw each token by inverse CDF from one uniform number per row and step, taken from the caller's
``torch.Generator``; the cached path (one new position per step) and the uncached one (the whole prefix
again every step) therefore consume the same random stream and give the same ids for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sweettok.ar.model import ArTransformer, KVCache


@dataclass(kw_only=True)
class SampleConfig:
    """How to sample. ``cfg_scale`` 1.0 is plain conditional sampling (no unconditional pass)."""

    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    cfg_scale: float = 1.0
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got {self.top_k}, {self.top_p}")


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """logits (b, V) with everything outside the top-k and outside the top-p nucleus set to -inf."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) >= top_p  # keep the smallest prefix whose mass reaches top_p
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def draw(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One id per row of logits (b, V) by inverse CDF of a uniform from ``generator``: (b,)."""
    probs = logits.double().softmax(-1)
    cdf = probs.cumsum(-1)
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=torch.float64).to(logits.device)
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=logits.shape[-1] - 1)[:, 0]


def _guided(model: ArTransformer, hidden: Tensor, position: int, config: SampleConfig, batch: int) -> Tensor:
    """Logits (b, V) for token ``position`` from the last hidden state (rows: conditional [, unconditional])."""
    s, t = model.logits(hidden[:, -1:], position)
    logits = (s if s.shape[1] else t)[:, 0].float() / config.temperature
    if config.cfg_scale != 1.0:
        cond, uncond = logits[:batch], logits[batch:]
        logits = uncond + config.cfg_scale * (cond - uncond)
    return filter_logits(logits, config.top_k, config.top_p)


@torch.no_grad()
def generate(model: ArTransformer, labels: Tensor, config: SampleConfig | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """labels (b,) -> ids (b, N_s + N_t) in the tokenizer's canonical layout ``[spatial | temporal]``."""
    config = config or SampleConfig()
    model.eval()
    b, n = labels.shape[0], model.config.tokens
    if config.cfg_scale != 1.0:  # unconditional rows after the conditional ones
        labels = torch.cat([labels, torch.full_like(labels, model.config.null_class)])
    rows = labels.shape[0]
    ids = torch.zeros(rows, 0, dtype=torch.long, device=labels.device)
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, rows, 1 + n, labels.device, dtype) if config.use_cache else None
    for position in range(n):
        hidden = model(labels, ids, cache)  # cached: only the new position; else the whole prefix
        token = draw(_guided(model, hidden, position, config, b), generator)  # (b,)
        ids = torch.cat([ids, token.repeat(rows // b)[:, None]], dim=1)
    return ids[:b]
