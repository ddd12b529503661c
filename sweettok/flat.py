"""Table 4's baseline without decoupling: one 1-D query autoencoder over all patches of a clip.

The encoder's N_s + N_t learned queries read every patch token of the clip (the first frame's and the
later frames', flattened into one sequence) with ``spatial_layers + temporal_layers`` CQAE layers; the
first N_s latents are quantized against the spatial codebook and the rest against the temporal one, so
the token count and the id layout match the decoupled model. The decoder's canvas holds every cell of
the (1 + k) x h' x w' grid and reads all latents at once. An image uses the first N_s queries and the
first frame's cells only.

Letters: b batch, p positions, k temporal steps, n queries, d width, l latent dim.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from sweettok.config import DecoderConfig, PatchConfig, TransformerConfig
from sweettok.decoder import LatentInputs
from sweettok.layers import CQAE
from sweettok.patchify import Patchify


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class FlatEncoder(nn.Module):
    """Clip -> ``z_s`` (b, N_s, l) and ``z_t`` (b, N_t, l) (None for images) from one query stack."""

    def __init__(self, patch: PatchConfig, config: TransformerConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__()
        d, p, k = config.width, patch.positions, patch.temporal_steps
        self.n_s = spatial_queries
        self.patchify = Patchify(patch, d)
        self.pos_cells = _param((1 + k) * p, d)
        self.queries = nn.Parameter(torch.randn(spatial_queries + p, d))
        self.stack = CQAE(d, config.heads, config.spatial_layers + config.temporal_layers, config.mlp_ratio)
        self.to_latent_s = nn.Linear(d, latent_dim)
        self.to_latent_t = nn.Linear(d, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # x: (b, c, t, h, w), validated
        b = x.shape[0]
        v_s, v_t = self.patchify(x)  # (b, p, d), (b, k, p, d)
        cells = v_s if v_t is None else torch.cat([v_s, rearrange(v_t, "b k p d -> b (k p) d")], dim=1)
        n = self.n_s if v_t is None else self.queries.shape[0]
        z = self.stack(cells + self.pos_cells[: cells.shape[1]], repeat(self.queries[:n], "n d -> b n d", b=b))
        if v_t is None:
            return self.to_latent_s(z), None
        return self.to_latent_s(z[:, : self.n_s]), self.to_latent_t(z[:, self.n_s :])


class FlatDecoder(LatentInputs):
    """Quantized latents -> canvas (b, 1 + k, h', w', d), (b, 1, h', w', d) for images."""

    def __init__(self, patch: PatchConfig, config: DecoderConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__(patch, config.width, spatial_queries, latent_dim)
        d, p, k = config.width, patch.positions, patch.temporal_steps
        self.canvas = _param((1 + k) * p, d)
        self.stack = CQAE(d, config.heads, config.spatial_layers + config.temporal_layers, config.mlp_ratio)

    def forward(self, zq_s: Tensor, zq_t: Tensor | None) -> Tensor:
        b = zq_s.shape[0]
        h, w = self.grid
        source = self.from_latent_s(zq_s) + self.pos_latent_s
        cells = h * w
        if zq_t is not None:
            source = torch.cat([source, self.from_latent_t(zq_t) + self.pos_latent_t], dim=1)
            cells = self.canvas.shape[0]
        canvas = self.stack(source, repeat(self.canvas[:cells], "c d -> b c d", b=b))
        return rearrange(canvas, "b (t h w) d -> b t h w d", h=h, w=w)
