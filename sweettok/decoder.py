"""Decoder: a mask-token canvas reads the spatial latents, is expanded along time, and reads the
temporal latents per position; a head predicts teacher code logits for every canvas cell.

Letters: b batch, p positions, n spatial latents, k temporal steps, d width, l latent dim, v teacher codes.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from sweettok.config import PatchConfig, TransformerConfig
from sweettok.layers import CQAE


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class Decoder(nn.Module):
    """Quantized latents -> canvas (b, 1 + k, h', w', d), or (b, 1, h', w', d) for images."""

    def __init__(self, patch: PatchConfig, config: TransformerConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__()
        d, p, k = config.width, patch.positions, patch.temporal_steps
        self.grid = patch.grid
        self.from_latent_s = nn.Linear(latent_dim, d)
        self.from_latent_t = nn.Linear(latent_dim, d)
        self.pos_latent_s = _param(spatial_queries, d)
        self.pos_latent_t = _param(p, d)
        self.canvas = _param(p, d)  # Omega_m, the mask tokens
        self.pos_time = _param(1 + k, d)
        self.spatial = CQAE(d, config.heads, config.spatial_layers, config.mlp_ratio)
        self.temporal = CQAE(d, config.heads, config.temporal_layers, config.mlp_ratio)

    def forward(self, zq_s: Tensor, zq_t: Tensor | None) -> Tensor:
        # zq_s: (b, n, l), zq_t: (b, p, l) or None
        b = zq_s.shape[0]
        h, w = self.grid
        canvas = self.spatial(self.from_latent_s(zq_s) + self.pos_latent_s, repeat(self.canvas, "p d -> b p d", b=b))
        if zq_t is None:
            return rearrange(canvas, "b (h w) d -> b 1 h w d", h=h, w=w)
        frames = rearrange(canvas, "b p d -> (b p) 1 d") + self.pos_time  # expand: (b p, 1 + k, d)
        latents = rearrange(self.from_latent_t(zq_t) + self.pos_latent_t, "b p d -> (b p) 1 d")
        frames = self.temporal(latents, frames)
        return rearrange(frames, "(b h w) t d -> b t h w d", b=b, h=h, w=w)


class CodeHead(nn.Module):
    """Canvas cells -> logits over the teacher codebook: (b, t', h', w', d) -> (b, t', h', w', v)."""

    def __init__(self, width: int, codebook_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, codebook_size)

    def forward(self, canvas: Tensor) -> Tensor:
        return self.proj(self.norm(canvas))
