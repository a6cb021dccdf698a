"""BBP forward/inverse, square and rectangular (M-Cor 4.12, E-Cor 5.2, E-Thm 5.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from certkit.rmt import bbp_edge, bbp_outlier, bbp_threshold, inverse_bbp, singular_values


@pytest.mark.parametrize("g", [0.25, 1.0, 3.0])
def test_square_forward_and_round_trip(g):
    sg = math.sqrt(g)
    theta = sg * np.array([1.01, 1.5, 3.0, 10.0])
    s = bbp_outlier(theta, noise_variance=g)
    np.testing.assert_allclose(s, theta + g / theta, rtol=1e-15)
    np.testing.assert_allclose(inverse_bbp(s, noise_variance=g), theta, rtol=1e-12)
    # subcritical spikes sit at the edge 2√g (not at σ + g/σ)
    for t in (0.0, 0.5 * sg, sg):
        assert bbp_outlier(t, noise_variance=g) == pytest.approx(2 * sg)
    assert bbp_outlier(sg * 1.000001, noise_variance=g) == pytest.approx(2 * sg, rel=1e-9)
    # 0 <= s - σ̂ = 2g/(s + sqrt(s²-4g))
    est = inverse_bbp(s, noise_variance=g)
    np.testing.assert_allclose(s - est, 2 * g / (s + np.sqrt(s * s - 4 * g)), rtol=1e-10)


@pytest.mark.parametrize("shape", [(600, 2400), (2400, 600), (300, 2700), (500, 500), (400, 100)])
def test_rectangular_round_trip_and_continuity(shape):
    g = 0.7
    n, m = shape
    cp = min(n, m) / max(n, m)
    kappa = math.sqrt(g / n * max(n, m))
    edge = bbp_edge(noise_variance=g, shape=shape)
    assert edge == pytest.approx(math.sqrt(g / n) * (math.sqrt(n) + math.sqrt(m)))
    crit = bbp_threshold(noise_variance=g, shape=shape)
    assert crit == pytest.approx(kappa * cp**0.25)
    theta = crit * np.array([1.001, 1.3, 2.0, 5.0])
    s = bbp_outlier(theta, noise_variance=g, shape=shape)
    assert np.all(np.diff(s) > 0)
    np.testing.assert_allclose(inverse_bbp(s, noise_variance=g, shape=shape), theta, rtol=1e-9)
    # continuity at the threshold: ρ' = 1 + √c'
    assert bbp_outlier(crit, noise_variance=g, shape=shape) == pytest.approx(
        bbp_edge(noise_variance=g, shape=shape))
    assert bbp_outlier(crit * (1 + 1e-9), noise_variance=g, shape=shape) == pytest.approx(
        bbp_edge(noise_variance=g, shape=shape), rel=1e-8)


def test_square_shape_equals_rectangular_formula_at_c1():
    theta = np.array([1.5, 2.0, 4.0])
    a = bbp_outlier(theta, noise_variance=1.0, shape=(50, 50))
    b = bbp_outlier(theta, noise_variance=1.0)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_spec_reference_value():
    # THEORY §3.5: n = 600, m = 2400, v = 1/n (g = 1), θ = 2.5 -> 3.4482, edge 3.0
    assert bbp_outlier(2.5, noise_variance=1.0, shape=(600, 2400)) == pytest.approx(3.4482, abs=1e-4)
    assert bbp_edge(noise_variance=1.0, shape=(600, 2400)) == pytest.approx(3.0)


def test_subcritical_inverse_raises_or_masks():
    with pytest.raises(ValueError, match="s =="):
        inverse_bbp(1.9, noise_variance=1.0)
    with pytest.raises(ValueError):
        inverse_bbp(2.0, noise_variance=1.0)  # exactly at the edge: undefined
    assert inverse_bbp(1.9, noise_variance=1.0, strict=False) is None
    out = inverse_bbp(np.array([1.0, 2.5, 3.0]), noise_variance=1.0, strict=False)
    assert isinstance(out, np.ma.MaskedArray)
    assert out.mask.tolist() == [True, False, False]
    assert out[1] == pytest.approx(2.0)
    assert not np.any(np.isnan(out.data))


@pytest.mark.parametrize(
    "kw",
    [dict(noise_variance=-1.0), dict(noise_variance=float("nan")), dict(noise_variance=1.0, shape=(0, 3)),
     dict(noise_variance=1.0, shape=(3,))],
)
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        bbp_outlier(1.0, **kw)


def test_zero_noise_is_identity():
    assert bbp_outlier(1.5, noise_variance=0.0) == 1.5
    assert inverse_bbp(1.5, noise_variance=0.0, shape=(3, 5)) == 1.5


@pytest.mark.parametrize("shape", [(400, 400), (300, 1200)])
def test_monte_carlo_outliers(shape):
    """One moderate-N Monte Carlo: s_1 ≈ ρ(θ) for supercritical θ, ≈ edge for subcritical."""
    rng = np.random.default_rng(7)
    n, m = shape
    g = 1.0
    crit = bbp_threshold(noise_variance=g, shape=shape)
    u = rng.standard_normal(n)
    u /= np.linalg.norm(u)
    v = rng.standard_normal(m)
    v /= np.linalg.norm(v)
    R = rng.standard_normal((n, m)) * math.sqrt(g / n)
    for theta, tol in [(2.5 * crit, 0.03), (0.5 * crit, 0.06)]:
        s1 = singular_values(R + theta * np.outer(u, v), method="gram")[0]
        pred = bbp_outlier(theta, noise_variance=g, shape=shape)
        assert s1 == pytest.approx(pred, rel=tol)
        if theta > crit:
            assert inverse_bbp(s1, noise_variance=g, shape=shape) == pytest.approx(theta, rel=0.05)
