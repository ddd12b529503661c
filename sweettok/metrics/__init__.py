"""Reconstruction metrics in plain PyTorch: PSNR/SSIM, codebook usage, Fréchet statistics, and the
public feature networks (I3D for FVD, Inception-v3 for FID) loaded from their published weight layouts."""

from sweettok.metrics.codes import CodeCounts
from sweettok.metrics.frechet import FeatureStats, frechet_distance
from sweettok.metrics.pixels import frame_psnr, frame_ssim, mean_colour

__all__ = ["CodeCounts", "FeatureStats", "frame_psnr", "frame_ssim", "frechet_distance", "mean_colour"]
