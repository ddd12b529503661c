"""Fréchet distance: the closed form for Gaussians, and statistics that merge exactly across workers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sweettok.metrics.frechet import FeatureStats, frechet_distance, frechet_gaussians


def test_commuting_covariances_match_the_closed_form() -> None:
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_gaussians(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-10)
    assert frechet_gaussians(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-10)


def test_general_covariances_match_scipy_sqrtm() -> None:
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = m1 @ m1.T + 0.1 * np.eye(6), m2 @ m2.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_gaussians(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)


def test_samples_of_known_gaussians_approach_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 0.0])
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    real, fake = FeatureStats.empty(3), FeatureStats.empty(3)
    real.add(rng.normal(mu1, np.sqrt(a), size=(200_000, 3)))
    fake.add(rng.normal(mu2, np.sqrt(b), size=(200_000, 3)))
    expected = 1.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(real, fake) == pytest.approx(expected, abs=0.02)


def test_statistics_merge_exactly_for_any_split() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(101, 8)), rng.normal(1.0, 2.0, size=(77, 8))

    def stats(parts: list[np.ndarray]) -> FeatureStats:
        out = FeatureStats.empty(8)
        for part in parts:  # one "actor" per part, merged by the driver
            s = FeatureStats.empty(8)
            s.add(part)
            out = out + s
        return out

    one = frechet_distance(stats([x]), stats([y]))
    two = frechet_distance(stats([x[:50], x[50:]]), stats([y[:10], y[10:]]))
    three = frechet_distance(stats([x[:1], x[1:60], x[60:]]), stats([y[:40], y[40:41], y[41:]]))
    assert one == pytest.approx(two, rel=1e-10) and one == pytest.approx(three, rel=1e-10)
    mu, cov = stats([x[:30], x[30:]]).mean_cov()
    assert np.allclose(mu, x.mean(0)) and np.allclose(cov, np.cov(x, rowvar=False))  # unbiased, as np.cov


def test_a_covariance_needs_two_vectors() -> None:
    s = FeatureStats.empty(2)
    s.add(np.ones((1, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        s.mean_cov()
