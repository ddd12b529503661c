"""PSNR and SSIM against closed-form cases and scikit-image's reference SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sweettok.metrics.pixels import MAX_PSNR, frame_psnr, frame_ssim, mean_colour


def test_psnr_of_a_constant_offset_is_closed_form() -> None:
    x = torch.full((2, 3, 4, 16, 16), 100, dtype=torch.uint8)  # clips (b, c, t, h, w)
    for d in (1, 5, 50):
        psnr = frame_psnr(x, x + d)
        assert psnr.shape == (2, 4)
        assert torch.allclose(psnr, torch.full_like(psnr, 20 * math.log10(255 / d)), atol=1e-5)
    assert torch.all(frame_psnr(x, x) == MAX_PSNR)  # identical frames: capped, not infinite


def test_psnr_of_half_the_pixels_off_by_255() -> None:
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    y = x.clone()
    y[..., :4, :] = 255  # MSE = 255^2 / 2 -> PSNR = 10 log10(2)
    assert frame_psnr(x, y).item() == pytest.approx(10 * math.log10(2), abs=1e-5)  # torchmetrics: float32 constants


def test_ssim_of_constant_frames_is_closed_form() -> None:
    # no variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 255)^2
    c1 = (0.01 * 255) ** 2
    for a, b in ((0, 0), (100, 120), (10, 250)):
        x = torch.full((1, 3, 16, 16), a, dtype=torch.uint8)
        y = torch.full((1, 3, 16, 16), b, dtype=torch.uint8)
        assert frame_ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 24, 40), generator=g, dtype=torch.uint8)
    y = (x.int() + torch.randint(-40, 40, x.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    ours = frame_ssim(x, y)
    for i in range(3):
        ref = structural_similarity(x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert ours[i].item() == pytest.approx(ref, abs=1e-9)
    assert torch.allclose(frame_ssim(x, x), torch.ones(3, dtype=torch.float64))


def test_ssim_refuses_frames_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="11x11"):
        frame_ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_mean_colour_is_the_rounded_clip_mean() -> None:
    x = torch.zeros(1, 3, 2, 4, 4, dtype=torch.uint8)
    x[:, 0, 0] = 255  # red channel: half the pixels 255 -> mean 127.5 -> 128
    floor = mean_colour(x)
    assert floor.dtype == torch.uint8 and floor.shape == x.shape
    assert np.array_equal(floor[0, :, 0, 0, 0].numpy(), [128, 0, 0])
