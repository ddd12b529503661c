"""Decoders: a mask-token canvas reads the spatial latents and the temporal latents; a head predicts teacher
code logits for every canvas cell.

Two layouts (``DecoderConfig.layout``):
- ``two_step`` (the paper): the canvas reads the spatial latents, is expanded to 1 + k frames, then each
  position reads its temporal latent along time. Positions do not mix after the temporal step.
- ``interleaved`` (the release): the canvas is expanded to 1 + k frames first; every spatial layer runs per
  frame, and temporal blocks (per position, along time, reading that position's temporal latent) run after
  evenly spaced spatial layers, so a position's temporal token reaches its neighbours.

Letters: b batch, p positions, n spatial latents, k temporal steps, t = 1 + k frames, d width,
l latent dim, v teacher codes.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from sweettok.config import DecoderConfig, PatchConfig
from sweettok.layers import CQAE, QueryBlock, SelfBlock


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class LatentInputs(nn.Module):
    """What every decoder reads: the quantized latents projected to the width, with their positions."""

    def __init__(self, patch: PatchConfig, width: int, spatial_queries: int, latent_dim: int) -> None:
        super().__init__()
        self.grid = patch.grid
        self.from_latent_s = nn.Linear(latent_dim, width)
        self.from_latent_t = nn.Linear(latent_dim, width)
        self.pos_latent_s = _param(spatial_queries, width)
        self.pos_latent_t = _param(patch.positions, width)


class Decoder(LatentInputs):
    """The paper's two-step decoder: quantized latents -> canvas (b, 1 + k, h', w', d), (b, 1, h', w', d) for images."""

    def __init__(self, patch: PatchConfig, config: DecoderConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__(patch, config.width, spatial_queries, latent_dim)
        d, p, k = config.width, patch.positions, patch.temporal_steps
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


class Blocks(nn.Module):
    """The two streams of a CQAE without its final norm, stepped one layer at a time."""

    def __init__(self, width: int, heads: int, layers: int, mlp_ratio: float) -> None:
        super().__init__()
        self.source = nn.ModuleList(SelfBlock(width, heads, mlp_ratio) for _ in range(layers))
        self.query = nn.ModuleList(QueryBlock(width, heads, mlp_ratio) for _ in range(layers))


def temporal_slots(spatial_layers: int, temporal_layers: int) -> list[int]:
    """The spatial layers (0-based) after which a temporal block runs, evenly spaced and ending at the last
    (8 + 4 layers: after 1, 3, 5, 7, as the release's ``external_temporal_layer_nums``)."""
    if temporal_layers > spatial_layers:
        raise ValueError(f"interleaved decoder: {temporal_layers} temporal layers need at least as many "
                         f"spatial layers, got {spatial_layers}")
    return [round((j + 1) * spatial_layers / temporal_layers) - 1 for j in range(temporal_layers)]


class InterleavedDecoder(LatentInputs):
    """The release's layout: quantized latents -> canvas (b, 1 + k, h', w', d), (b, 1, h', w', d) for images."""

    def __init__(self, patch: PatchConfig, config: DecoderConfig, spatial_queries: int, latent_dim: int) -> None:
        super().__init__(patch, config.width, spatial_queries, latent_dim)
        d, p, k = config.width, patch.positions, patch.temporal_steps
        self.canvas = _param(p, d)
        self.pos_time = _param(1 + k, d)
        self.spatial = Blocks(d, config.heads, config.spatial_layers, config.mlp_ratio)
        self.temporal = Blocks(d, config.heads, config.temporal_layers, config.mlp_ratio)
        self.slots = temporal_slots(config.spatial_layers, config.temporal_layers)
        self.norm = nn.LayerNorm(d)

    def forward(self, zq_s: Tensor, zq_t: Tensor | None) -> Tensor:
        # zq_s: (b, n, l), zq_t: (b, p, l) or None
        b = zq_s.shape[0]
        h, w = self.grid
        t = 1 if zq_t is None else self.pos_time.shape[0]
        canvas = repeat(self.canvas, "p d -> (b t) p d", b=b, t=t) + repeat(self.pos_time[:t], "t d -> (b t) 1 d", b=b)
        source_s = self.from_latent_s(zq_s) + self.pos_latent_s  # (b, n, d)
        source_t = None
        if zq_t is not None:
            source_t = rearrange(self.from_latent_t(zq_t) + self.pos_latent_t, "b p d -> (b p) 1 d")
        j = 0
        for i, (source_block, query_block) in enumerate(zip(self.spatial.source, self.spatial.query)):
            source_s = source_block(source_s)
            canvas = query_block(canvas, repeat(source_s, "b n d -> (b t) n d", t=t))  # per frame: ((b t), p, d)
            if source_t is not None and i in self.slots:
                frames = rearrange(canvas, "(b t) p d -> (b p) t d", b=b)  # per position, along time
                source_t = self.temporal.source[j](source_t)
                frames = self.temporal.query[j](frames, source_t)
                canvas = rearrange(frames, "(b p) t d -> (b t) p d", b=b)
                j += 1
        return rearrange(self.norm(canvas), "(b t) (h w) d -> b t h w d", b=b, h=h, w=w)


def build_decoder(patch: PatchConfig, config: DecoderConfig, spatial_queries: int, latent_dim: int) -> nn.Module:
    """The decoder of ``config.layout``."""
    cls = InterleavedDecoder if config.layout == "interleaved" else Decoder
    return cls(patch, config, spatial_queries, latent_dim)


class CodeHead(nn.Module):
    """Canvas cells -> logits over the teacher codebook: (b, t', h', w', d) -> (b, t', h', w', v)."""

    def __init__(self, width: int, codebook_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, codebook_size)

    def forward(self, canvas: Tensor) -> Tensor:
        return self.proj(self.norm(canvas))
