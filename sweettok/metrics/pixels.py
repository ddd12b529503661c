"""PSNR and SSIM per frame on 8-bit pixels (torchmetrics), and the per-clip mean-colour floor prediction.

Frames are uint8 (or float on the 0..255 scale) ``(n, c, h, w)``; clips ``(b, c, t, h, w)`` are scored
frame by frame. PSNR is ``10 log10(255^2 / MSE)`` over h, w, c of a frame, capped at ``MAX_PSNR`` (identical
frames would give infinity, which does not average). SSIM is the standard definition (Wang et al. 2004):
an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, data range 255, population statistics, each
channel separately, averaged over the positions where the window fits ("valid") and over channels.

PSNR comes from torchmetrics (it imports without torchvision here). SSIM is computed here: torchmetrics'
SSIM (reflect padding, then cropping) differs from the reference definition by about 1e-4 on small frames,
while this one matches scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` (the published Wang et al. settings) to float precision.
"""

from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio

PEAK = 255.0
MAX_PSNR = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _frames(x: Tensor) -> Tensor:
    """(b, c, t, h, w) or (n, c, h, w) -> float64 frames (n, c, h, w) on the 0..255 scale."""
    if x.ndim == 5:
        x = x.transpose(1, 2).flatten(0, 1)
    if x.ndim != 4:
        raise ValueError(f"expected frames (n, c, h, w) or clips (b, c, t, h, w), got shape {tuple(x.shape)}")
    return x.double()


def _per_clip(values: Tensor, x: Tensor) -> Tensor:
    return values.view(x.shape[0], x.shape[2]) if x.ndim == 5 else values


def frame_psnr(x: Tensor, y: Tensor) -> Tensor:
    """PSNR in dB of every frame: (n,) for frames, (b, t) for clips."""
    psnr = peak_signal_noise_ratio(_frames(x), _frames(y), data_range=PEAK, reduction="none", dim=(1, 2, 3))
    return _per_clip(psnr.nan_to_num(posinf=MAX_PSNR).clamp(max=MAX_PSNR), x)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """Normalised 2-d Gaussian (size, size), float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def frame_ssim(x: Tensor, y: Tensor) -> Tensor:
    """SSIM of every frame (see the module docstring): (n,) for frames, (b, t) for clips."""
    a, b = _frames(x), _frames(y)
    c = a.shape[1]
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(a.shape[-2:])}")
    win = gaussian_window().to(a.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, win, groups=c)  # (n, c, h-10, w-10): valid positions only

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return _per_clip(s.mean(dim=(1, 2, 3)), x)


def mean_colour(x: Tensor) -> Tensor:
    """The per-clip mean-colour prediction: every pixel of a clip (b, c, t, h, w) set to the clip's mean
    colour, rounded to 8 bits (uint8, same shape). The floor a tokenizer must clear."""
    mean = x.double().mean(dim=(2, 3, 4), keepdim=True).round().clamp(0, 255)
    return mean.expand_as(x).to(torch.uint8)
