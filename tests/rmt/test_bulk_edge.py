"""c-aware BEMA fit (THEORY §3.6, Trap T17): acceptance on synthetic noise and spikes."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from certkit.rmt import MPFit, fit_mp, inverse_bbp, johnstone_constant, tw1_quantile

NOISE_SHAPES = [(1000, 500), (500, 1000), (768, 3072)]


def _noise(shape, std, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * std


def _spiked(n, m, thetas, *, v, seed):
    """Low-rank S (singular values ``thetas``) + iid N(0, v) noise, as float64 numpy."""
    rng = np.random.default_rng(seed)
    r = len(thetas)
    U = np.linalg.qr(rng.standard_normal((n, r)))[0]
    V = np.linalg.qr(rng.standard_normal((m, r)))[0]
    return (U * np.asarray(thetas)) @ V.T + rng.standard_normal((n, m)) * math.sqrt(v)


@pytest.mark.parametrize("shape", NOISE_SHAPES)
def test_pure_noise_variance_and_no_false_spikes(shape):
    std = 0.02
    seeds = range(20)
    fits = [fit_mp(_noise(shape, std, s)) for s in seeds]
    for f in fits:
        assert f.entry_variance == pytest.approx(std**2, rel=0.02)
        assert f.sigma_plus == pytest.approx(std * (math.sqrt(shape[0]) + math.sqrt(shape[1])),
                                             rel=0.02)
        assert f.fit_error < 0.03
        assert f.bulk_fraction > 0.98
    no_spike = sum(f.n_spikes == 0 for f in fits)
    assert no_spike >= 0.95 * len(fits)


@pytest.mark.parametrize("c", [0.25, 1.0, 4.0])
def test_scale_and_edge_with_low_rank_signal(c):
    """σ̂² and T₊ within 2% of truth at N = 1000 (THEORY §3.6 step 7)."""
    N = 1000
    M = int(round(c * N))
    v = 1.0 / N
    W = _spiked(N, M, [6.0, 4.0, 3.0], v=v, seed=11)
    f = fit_mp(W)
    assert f.ratio == pytest.approx(c)
    assert f.entry_variance == pytest.approx(v, rel=0.02)
    lam_true = v * (1 + math.sqrt(c)) ** 2
    assert f.lambda_plus_asymptotic == pytest.approx(lam_true, rel=0.02)
    # T₊ against the same finite-N edge formula evaluated at the true variance
    t = tw1_quantile(1 - f.beta)
    T_true = v * ((1 + math.sqrt(c)) ** 2 + johnstone_constant(c) * t * N ** (-2 / 3))
    assert f.lambda_plus == pytest.approx(T_true, rel=0.02)
    if c >= 1:  # at c = 0.25 the TW allowance alone is 2.2% of the edge (N = 1000)
        assert f.lambda_plus == pytest.approx(lam_true, rel=0.02)
    assert f.n_spikes == 3


@pytest.mark.parametrize("shape", [(1000, 500), (500, 1000), (800, 800)])
def test_planted_spikes_found_and_inverse_bbp(shape):
    n, m = shape
    g = 1.0
    thetas = [8.0, 5.0, 3.5]  # threshold κ c'^{1/4} <= 1.42 for these shapes
    W = _spiked(n, m, thetas, v=g / n, seed=5)
    f = fit_mp(W)
    assert f.n_spikes == 3
    assert list(f.spikes) == sorted(f.spikes, reverse=True)
    est = inverse_bbp(np.array(f.spikes), noise_variance=f.gain, shape=(n, m))
    np.testing.assert_allclose(est, thetas, rtol=0.05)
    est_true_g = inverse_bbp(np.array(f.spikes), noise_variance=g, shape=(n, m))
    np.testing.assert_allclose(est_true_g, thetas, rtol=0.05)


# ALGORITHMS §1.10 (iid N(0, 0.02²), α = 0.25, β = 0.8): σ₊ of the authors' code, which uses
# the "(1+√γ)**4/3" constant; with the correct Johnstone constant σ₊ is ≈ 1% larger.
REFERENCE_SIGMA_PLUS = {(768, 768): 1.0891, (3072, 768): 1.6544, (768, 3072): 1.6556,
                        (2304, 768): 1.5050}


@pytest.mark.parametrize("shape,ref", sorted(REFERENCE_SIGMA_PLUS.items()))
def test_reference_table(shape, ref):
    std = 0.02
    f = fit_mp(_noise(shape, std, 0))
    assert f.sigma_plus == pytest.approx(ref, rel=0.015)
    assert f.entry_variance == pytest.approx(std**2, rel=0.01)  # paper scale, not σ_e²·M/N
    assert f.sigma_plus_asymptotic == pytest.approx(
        std * (math.sqrt(shape[0]) + math.sqrt(shape[1])), rel=0.01)


def test_conv_unfold_and_slices():
    std = 0.05
    W = _noise((96, 48, 3, 3), std, 2)
    fu = fit_mp(W)
    assert fu.shape == (96, 48 * 9) and fu.source_shape == (96, 48, 3, 3)
    assert fu.conv == "unfold" and fu.n_matrices == 1
    assert fu.entry_variance == pytest.approx(std**2, rel=0.05)
    np.testing.assert_allclose(fu.entry_variance, fit_mp(W.reshape(96, -1)).entry_variance)
    fs = fit_mp(W, conv="slices")
    assert fs.shape == (96, 48) and fs.n_matrices == 9 and fs.conv == "slices"
    assert fs.entry_variance == pytest.approx(std**2, rel=0.05)
    assert fs.n_spikes == 0
    assert fs.fit_error < 0.1


def test_result_object():
    f = fit_mp(_noise((300, 200), 1.0, 0))
    assert isinstance(f, MPFit)
    assert f.label == "estimated"
    assert (f.rows, f.cols, f.alpha, f.beta, f.spike_level) == (300, 200, 0.25, 0.8, 0.01)
    assert f.gain == pytest.approx(300 * f.entry_variance)
    assert f.lambda_minus < f.lambda_plus < f.spike_threshold
    assert f.sigma_plus == pytest.approx(math.sqrt(f.rows * f.lambda_plus))
    d = f.to_dict()
    json.dumps(d)
    for key in ("entry_variance", "lambda_plus", "sigma_plus", "bulk_fraction", "fit_error",
                "n_spikes", "spikes", "label", "ratio"):
        assert key in d
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.entry_variance = 1.0  # type: ignore[misc]
    assert "estimated" in repr(f)


def test_bulk_fraction_counts_structural_zeros():
    W = _noise((200, 800), 1.0, 1)
    f = fit_mp(W)
    assert f.bulk_fraction >= 0.75  # 600 of 800 eigenvalues are structural zeros
    # strong spikes lower the bulk fraction by exactly their count
    S = _spiked(200, 800, [200.0, 150.0], v=1.0, seed=1)
    f2 = fit_mp(S)
    assert f2.n_spikes == 2
    assert f2.bulk_fraction == pytest.approx(1 - 2 / 800, abs=2 / 800)


def test_fit_error_detects_non_mp_bulk():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((400, 200))
    W[:, :100] *= 3.0  # two-scale covariance: not an MP bulk
    assert fit_mp(W).fit_error > 0.1
    assert fit_mp(rng.standard_normal((400, 200))).fit_error < 0.03


def test_alpha_beta_affect_edge_as_documented():
    W = _noise((600, 600), 1.0, 3)
    f8, f5 = fit_mp(W, beta=0.8), fit_mp(W, beta=0.5)
    assert f8.lambda_plus < f5.lambda_plus < f8.lambda_plus_asymptotic
    for a in (0.1, 0.2, 0.3, 0.4):
        assert fit_mp(W, alpha=a).lambda_plus_asymptotic == pytest.approx(4.0, rel=0.01)


@pytest.mark.parametrize(
    "W,kw,match",
    [
        (np.full((50, 50), np.nan), {}, "W"),
        (np.full((50, 50), np.inf), {}, "W"),
        (np.ones(50), {}, "W"),
        (np.ones((3, 4, 5)), {}, "W"),
        (np.zeros((0, 40)), {}, "W"),
        (np.ones((20, 10)), {}, "W"),  # p = 10: window has 5 < 8 values
        (np.random.default_rng(0).standard_normal((60, 60)), {"alpha": 0.5}, "alpha"),
        (np.random.default_rng(0).standard_normal((60, 60)), {"beta": 1.0}, "beta"),
        (np.random.default_rng(0).standard_normal((60, 60)), {"spike_level": 0.0}, "spike_level"),
        (np.random.default_rng(0).standard_normal((4, 3, 3, 3)), {"conv": "im2col"}, "conv"),
    ],
)
def test_bad_input(W, kw, match):
    with pytest.raises(ValueError, match=match):
        fit_mp(W, **kw)


def test_zero_matrix_rejected():
    with pytest.raises(ValueError, match="W"):
        fit_mp(np.zeros((40, 40)))


@pytest.mark.slow
@pytest.mark.parametrize("shape", NOISE_SHAPES)
def test_false_spike_rate_many_seeds(shape):
    fits = [fit_mp(_noise(shape, 1.0, 1000 + s)) for s in range(100)]
    rate = np.mean([f.n_spikes > 0 for f in fits])
    assert rate <= 0.05
