"""Fréchet distance between two feature sets, from sufficient statistics that merge exactly.

Each worker accumulates ``FeatureStats`` (count n, sum of features s, sum of outer products S) in float64;
the driver adds them. Mean ``mu = s / n`` and covariance ``(S - n mu mu^T) / (n - 1)`` (the unbiased
estimate, as numpy's ``np.cov`` in the public FID/FVD scripts) do not depend on how the set was split.

FD = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^1/2), with tr((C1 C2)^1/2) taken as the sum of the
square roots of the eigenvalues of C1^1/2 C2 C1^1/2 (symmetric PSD, so eigh is exact and stable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FeatureStats:
    """Sufficient statistics of a feature set of dimension ``dim``."""

    count: int
    total: np.ndarray  # (dim,) float64
    outer: np.ndarray  # (dim, dim) float64

    @classmethod
    def empty(cls, dim: int) -> "FeatureStats":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    def add(self, features: np.ndarray | torch.Tensor) -> None:
        """Add a batch of features (n, dim)."""
        f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
        if f.ndim != 2 or f.shape[1] != self.total.shape[0]:
            raise ValueError(f"expected features (n, {self.total.shape[0]}), got {f.shape}")
        self.count += f.shape[0]
        self.total += f.sum(0)
        self.outer += f.T @ f

    def __add__(self, other: "FeatureStats") -> "FeatureStats":
        return FeatureStats(self.count + other.count, self.total + other.total, self.outer + other.outer)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        mu = self.total / self.count
        cov = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, (cov + cov.T) / 2

    def to_dict(self) -> dict:
        return {"count": self.count, "total": self.total, "outer": self.outer}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureStats":
        return cls(int(d["count"]), np.asarray(d["total"], np.float64), np.asarray(d["outer"], np.float64))


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_gaussians(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, c1) and N(mu2, c2)."""
    r1 = _sqrt_psd(c1)
    m = r1 @ c2 @ r1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt)


def frechet_distance(real: FeatureStats, fake: FeatureStats) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets."""
    mu1, c1 = real.mean_cov()
    mu2, c2 = fake.mean_cov()
    return frechet_gaussians(mu1, c1, mu2, c2)
