"""Tracy–Widom TW₁ via the Ferrari–Spohn determinant: reference values (THEORY §3.6 step 6)."""

from __future__ import annotations

import numpy as np
import pytest

from certkit.rmt import tw1_cdf, tw1_quantile

REFERENCE_QUANTILES = {0.2: -2.28316, 0.5: -1.26857, 0.9: 0.45014, 0.95: 0.97932, 0.99: 2.02345}


@pytest.mark.parametrize("p,q", sorted(REFERENCE_QUANTILES.items()))
def test_quantiles(p, q):
    assert tw1_quantile(p) == pytest.approx(q, abs=5e-5)
    assert tw1_cdf(q) == pytest.approx(p, abs=2e-5)


def test_mean_and_sd():
    # E[X] = a + ∫_a^b (1 - F), E[(X-a)^2] = ∫_a^b 2(s-a)(1-F) with F(a) ≈ 0, F(b) ≈ 1.
    a, b = -9.0, 9.0
    nodes, weights = np.polynomial.legendre.leggauss(120)
    s = a + (b - a) * (nodes + 1) / 2
    w = weights * (b - a) / 2
    tail = 1.0 - tw1_cdf(s)
    mean = a + np.sum(w * tail)
    second = np.sum(w * 2 * (s - a) * tail)
    sd = np.sqrt(second - (mean - a) ** 2)
    assert mean == pytest.approx(-1.20653, abs=1e-4)
    assert sd == pytest.approx(1.26798, abs=1e-4)


def test_cdf_shape_monotone_and_limits():
    s = np.linspace(-8, 8, 41)
    F = tw1_cdf(s)
    assert F.shape == s.shape
    assert np.all(np.diff(F) >= -1e-12)
    assert F[0] < 1e-8 and F[-1] > 1 - 1e-7
    assert tw1_cdf(-20.0) == 0.0 and tw1_cdf(20.0) == 1.0
    assert isinstance(tw1_cdf(0.0), float)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, float("nan")])
def test_quantile_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p"):
        tw1_quantile(p)
