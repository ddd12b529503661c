"""Encoder: patchify, then CQAE_s over the first frame and CQAE_t over frame-wise residuals.

Letters: b batch, p spatial positions (h' * w'), k temporal steps, n queries, d width, l latent dim.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from sweettok.config import PatchConfig, TransformerConfig
from sweettok.layers import CQAE
from sweettok.patchify import Patchify


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class Encoder(nn.Module):
    """Clip -> continuous latents ``z_s`` (b, N_s, l) and ``z_t`` (b, p, l) (None for images)."""

    def __init__(self, patch: PatchConfig, config: TransformerConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__()
        d, p, k = config.width, patch.positions, patch.temporal_steps
        self.patchify = Patchify(patch, d)
        self.pos_s = _param(p, d)
        self.pos_t = _param(k, d)
        self.queries_s = nn.Parameter(torch.randn(spatial_queries, d))  # Omega_s: unit scale keeps queries distinct
        self.queries_t = _param(p, d)  # Omega_t: one query per spatial position
        self.spatial = CQAE(d, config.heads, config.spatial_layers, config.mlp_ratio)
        self.temporal = CQAE(d, config.heads, config.temporal_layers, config.mlp_ratio)
        self.to_latent_s = nn.Linear(d, latent_dim)
        self.to_latent_t = nn.Linear(d, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # x: (b, c, t, h, w), validated
        b = x.shape[0]
        v_s, v_t = self.patchify(x)  # (b, p, d), (b, k, p, d)
        z_s = self.spatial(v_s + self.pos_s, repeat(self.queries_s, "n d -> b n d", b=b))
        z_s = self.to_latent_s(z_s)
        if v_t is None:
            return z_s, None
        # frame-wise residuals: step 0 against the reference frame, step i against step i-1
        previous = torch.cat([v_s[:, None], v_t[:, :-1]], dim=1)
        residual = rearrange(v_t - previous + self.pos_t[:, None], "b k p d -> (b p) k d")
        queries = repeat(self.queries_t, "p d -> (b p) 1 d", b=b)
        z_t = rearrange(self.temporal(residual, queries), "(b p) 1 d -> b p d", b=b)
        return z_s, self.to_latent_t(z_t)
