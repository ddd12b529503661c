"""Clip validation, patchify (pixels -> patch tokens) and unpatchify (patch tokens -> pixels).

Letters: b batch, c channels, t frames, h/w pixels, k temporal steps (t = 1 + p_t*k), p positions
(h/p_h * w/p_w), d width.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from sweettok.config import PatchConfig


class ClipError(ValueError):
    """A clip or id tensor that does not match the tokenizer's configuration."""


def to_bcthw(x: Tensor, patch: PatchConfig) -> Tensor:
    """Validate a clip given as ``b t h w c`` or ``b c t h w`` and return it as ``b c t h w``.

    A 4-d tensor is taken as a batch of images, ``b h w c`` or ``b c h w``.
    """
    if not isinstance(x, Tensor):
        raise ClipError(f"expected a torch.Tensor clip, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ClipError(
            f"expected floating-point pixels in [-0.5, 0.5], got dtype {x.dtype}; "
            "convert uint8 frames with sweettok.patchify.from_uint8"
        )
    if x.ndim == 4:
        x = x.unsqueeze(1) if x.shape[-1] == patch.channels else x.unsqueeze(2)
    if x.ndim != 5:
        raise ClipError(f"expected a 5-d clip (b t h w c or b c t h w) or 4-d images, got shape {tuple(x.shape)}")
    if x.shape[-1] == patch.channels and x.shape[1] != patch.channels:
        x = rearrange(x, "b t h w c -> b c t h w")
    elif x.shape[1] != patch.channels:
        raise ClipError(
            f"expected {patch.channels} channels in the last or second dimension, got shape {tuple(x.shape)}"
        )
    _, _, t, h, w = x.shape
    if (t - 1) % patch.p_t:
        raise ClipError(f"expected 1 + {patch.p_t}*k frames (1 for an image, {patch.frames} for a clip), got {t}")
    if t not in (1, patch.frames):
        raise ClipError(f"this tokenizer takes 1 frame (image) or {patch.frames} frames, got {t}")
    if h % patch.p_h or w % patch.p_w:
        raise ClipError(f"frame size {h}x{w} is not divisible by the patch size {patch.p_h}x{patch.p_w}")
    if (h, w) != (patch.height, patch.width):
        raise ClipError(f"expected frames of {patch.height}x{patch.width}, got {h}x{w}; resize first")
    return x


def from_uint8(frames: Tensor) -> Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-0.5, 0.5] (any layout)."""
    return frames.float() / 255.0 - 0.5


def to_uint8(pixels: Tensor) -> Tensor:
    """float pixels in [-0.5, 0.5] -> uint8 in [0, 255] (any layout)."""
    return ((pixels.float().clamp(-0.5, 0.5) + 0.5) * 255.0).round().to(torch.uint8)


class Patchify(nn.Module):
    """First frame with a p_h x p_w kernel -> v_s; frames 1..t-1 with p_t x p_h x p_w -> v_t."""

    def __init__(self, patch: PatchConfig, width: int) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(patch.channels, width, (patch.p_h, patch.p_w), stride=(patch.p_h, patch.p_w))
        kernel = (patch.p_t, patch.p_h, patch.p_w)
        self.temporal = nn.Conv3d(patch.channels, width, kernel, stride=kernel)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # x: (b, c, t, h, w) -> v_s (b, p, d), v_t (b, k, p, d) or None for images
        v_s = rearrange(self.spatial(x[:, :, 0]), "b d h w -> b (h w) d")
        if x.shape[2] == 1:
            return v_s, None
        v_t = rearrange(self.temporal(x[:, :, 1:]), "b d k h w -> b k (h w) d")
        return v_s, v_t


class Unpatchify(nn.Module):
    """Cells of the (1 + k) x h' x w' grid -> pixels: the first row of cells to frame 0, the rest to p_t frames each."""

    def __init__(self, patch: PatchConfig, width: int) -> None:
        super().__init__()
        self.patch = patch
        c, pt, ph, pw = patch.channels, patch.p_t, patch.p_h, patch.p_w
        self.spatial = nn.Linear(width, c * ph * pw)
        self.temporal = nn.Linear(width, c * pt * ph * pw)

    def forward(self, cells: Tensor) -> Tensor:
        # cells: (b, 1 + k, h', w', d) -> pixels (b, c, 1 + p_t*k, h, w)
        p = self.patch
        first = rearrange(
            self.spatial(cells[:, :1]), "b t y x (c i j) -> b c t (y i) (x j)", c=p.channels, i=p.p_h, j=p.p_w
        )
        if cells.shape[1] == 1:
            return first
        rest = rearrange(
            self.temporal(cells[:, 1:]),
            "b k y x (c f i j) -> b c (k f) (y i) (x j)",
            c=p.channels, f=p.p_t, i=p.p_h, j=p.p_w,
        )
        return torch.cat([first, rest], dim=2)
