"""Random budget bounds (M-Cor 5.10/5.11, E-Cor 1.4–1.6): identities, a Monte Carlo check, input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import beta

from certkit import LipschitzBound, data_path_budget
from certkit.bounds import (
    LayerNoiseModel,
    gaussian_budget_bound,
    gaussian_threshold,
    mp_edge_budget_bound,
    multilayer_budget_bounds,
    nominal_edge,
    subgaussian_budget_bound,
    thresholding_level,
)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 20), st.floats(1e-3, 10),
       st.floats(1e-4, 0.99), st.integers(1, 4), st.integers(0, 1000))
def test_m_cor_5_11_equals_m_cor_5_10_and_e_cor_1_4_at_c_half(n, m, T, g, delta, P, seed):
    V = np.random.default_rng(seed).normal(size=(T, P, m))
    L = np.random.default_rng(seed + 1).uniform(0, 3, size=T)
    a = gaussian_budget_bound(V, L, n=n, g=g, delta=delta).value
    b = mp_edge_budget_bound(V, L, n=n, sigma_plus=nominal_edge(g, n, m), delta=delta).value
    c = subgaussian_budget_bound(V, L, n=n, g=g, c=0.5, delta=delta).value
    assert math.isclose(a, b, rel_tol=1e-12) and math.isclose(a, c, rel_tol=1e-12)


def test_threshold_formula_and_positions_union():
    t = gaussian_threshold(10, 2.0, 0.1, 5, positions=3)
    assert math.isclose(t, math.sqrt((4.0 / 10) * math.log(2 * 10 * 3 * 5 / 0.1)))
    assert math.isclose(thresholding_level(8, 4, 1.0, 0.5), math.sqrt(2 * math.log(128) / 8))


def clopper_pearson_lower(k: int, n: int, level: float = 0.999) -> float:
    return 0.0 if k == 0 else float(beta.ppf(1 - level, k, n - k + 1))


@pytest.mark.parametrize("n, m, T, delta", [(8, 4, 1, 0.5), (64, 16, 16, 0.1)])
def test_m_cor_5_10_core_event_monte_carlo(n, m, T, delta):
    """BinomCheck (THEORY §2.3): fail only if the 99.9% lower CP bound on the failure rate > δ."""
    g_rng = np.random.default_rng(0)
    g, trials = 1.5, 2000
    V = g_rng.normal(size=(T, m))
    t = gaussian_threshold(n, g, delta, T)
    fails = 0
    for _ in range(trials):
        R = g_rng.normal(scale=math.sqrt(g / n), size=(n, m))
        fails += bool((np.abs(V @ R.T).max(1) > np.linalg.norm(V, axis=1) * t).any())
    assert clopper_pearson_lower(fails, trials) <= delta
    bound = gaussian_budget_bound(V, 1.0, n=n, g=g, delta=delta).value
    R = g_rng.normal(scale=math.sqrt(g / n), size=(n, m))
    assert data_path_budget(R, V, 1.0) <= bound or fails > 0


def test_path_dependent_lipschitz_is_flagged_and_never_certified():
    V = torch.randn(3, 4)
    L = LipschitzBound((1.0, 2.0, 3.0), certified=True, method="L3", path_dependent=True)
    b = gaussian_budget_bound(V, L, n=5, g=1.0, delta=0.1)
    assert "path-dependent" in b.lipschitz_method and b.certified is False
    assert "probabilistic" in b.label


def test_multilayer_budget_bounds_split_delta():
    V = torch.randn(4, 3)
    out = multilayer_budget_bounds([LayerNoiseModel(V, 1.0, 5, 1.0),
                                    LayerNoiseModel(V, 1.0, 7, 2.0, c=1 / 6)], 0.1)
    assert [b.result for b in out] == ["E-Cor 1.5", "E-Cor 1.6"]
    assert all(math.isclose(b.delta, 0.05) for b in out)
    with pytest.raises(ValueError, match="sum\\(deltas\\)"):
        multilayer_budget_bounds([LayerNoiseModel(V, 1.0, 5, 1.0)], 0.1, deltas=[0.2])


@pytest.mark.parametrize("kw, match", [
    (dict(n=0, g=1.0, delta=0.1), "n == 0"),
    (dict(n=3, g=-1.0, delta=0.1), "g == -1.0"),
    (dict(n=3, g=1.0, delta=1.0), "delta == 1.0"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        gaussian_budget_bound(np.ones((2, 3)), 1.0, **kw)


@given(st.integers(1, 6), st.integers(1, 6), st.floats(1e-3, 10), st.integers(0, 999))
def test_e_rem_2_8_bregman_identity_for_frobenius(r, c, lam, seed):
    """E-Rem 2.8 [D]: Ω(S+R) − Ω(S) = ⟨∇Ω(S), R⟩ + D_Ω with D_Ω = λ‖R‖_F² for Ω = λ‖·‖_F²."""
    g = np.random.default_rng(seed)
    S, R = g.normal(size=(r, c)), g.normal(size=(r, c))
    lhs = lam * (np.sum((S + R) ** 2) - np.sum(S**2))
    rhs = np.sum(2 * lam * S * R) + lam * np.sum(R**2)
    assert math.isclose(lhs, rhs, rel_tol=1e-9, abs_tol=1e-9 * lam * (1 + np.sum((S + R) ** 2)))
