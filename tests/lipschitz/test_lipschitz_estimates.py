"""E1/E2 estimates (THEORY §1.7): always certified=False, lower estimates of L3 for ReLU/abs nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings

from certkit._registry import registered_results
from certkit.lipschitz import (
    jacobian_estimate,
    lipschitz_L2,
    lipschitz_L3,
    secant_estimate,
)
from certkit.testing import certification_problems

RTOL = 1e-9


def _psi2(p):
    return lambda u: p.mlp.psi2(p.k, u)


def _noise_floor(p, n_grid):
    """Absolute error allowance of a secant ratio: eps·|logits| / (min gap · ‖d_s‖_∞)."""
    v = p.v
    d = (v @ p.R.T).abs().amax(dim=1).numpy()
    zmax = max(float(p.mlp.psi2(p.k, v @ p.A_theta(float(t)).T).abs().max())
               for t in np.linspace(0.0, 1.0, n_grid))
    with np.errstate(divide="ignore"):
        return np.where(d > 0, 1e-9 * (zmax + 1.0) * (n_grid - 1) / d, 0.0)


@given(certification_problems(max_samples=4, max_depth=3))
@settings(deadline=None)
def test_estimates_are_uncertified_lower_estimates(p):
    L3 = np.asarray(lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x).values)
    L2 = np.asarray(lipschitz_L2(p.mlp, p.k, p.S, p.R, p.x).values)
    n_grid = 5
    floor = _noise_floor(p, n_grid)
    for pairs in ("endpoint", "all"):
        e2 = secant_estimate(_psi2(p), p.S, p.R, p.v, n_grid=n_grid, pairs=pairs)
        assert (e2.certified, e2.method, e2.path_dependent) == (False, "estimate:secant", True)
        assert np.all(np.asarray(e2.values) <= L3 * (1 + RTOL) + floor + 1e-12)
    e1i = jacobian_estimate(_psi2(p), p.S, p.R, p.v, n_grid=n_grid, mode="induced")
    assert (e1i.certified, e1i.method, e1i.path_dependent) == (False, "estimate:jacobian", True)
    # the local Jacobian's induced norm never exceeds the gated product L2
    assert np.all(np.asarray(e1i.values) <= L2 * (1 + RTOL) + 1e-12)


@given(certification_problems(max_samples=4, max_depth=3))
@settings(deadline=None)
def test_directional_jacobian_at_differentiable_points_is_below_L3(p):
    # at exact kinks autograd's relu'(0) = 0 convention may not correspond to any piece;
    # nonzero biases keep grid points off kinks for these draws (all biases N(0,1) ≠ 0)
    assume(all(bool((b != 0).all()) for b in p.mlp.biases))
    L3 = np.asarray(lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x).values)
    e1 = jacobian_estimate(_psi2(p), p.S, p.R, p.v, n_grid=7)
    assert not e1.certified
    assert np.all(np.asarray(e1.values) <= L3 * (1 + 1e-7) + 1e-9)


def _affine_problem():
    torch.manual_seed(0)
    W = torch.randn(3, 4, dtype=torch.float64)
    S = W * (torch.rand(3, 4) < 0.5)
    R = W - S
    v = torch.randn(5, 4, dtype=torch.float64)
    B = torch.randn(2, 3, dtype=torch.float64)
    return (lambda u: u @ B.T), S, R, v, B


def test_affine_psi2_estimates_are_exact():
    psi2, S, R, v, B = _affine_problem()
    d = v @ R.T
    expected = (d @ B.T).abs().amax(1) / d.abs().amax(1)
    for est in (
        jacobian_estimate(psi2, S, R, v),
        secant_estimate(psi2, S, R, v),
        secant_estimate(psi2, S, R, v, pairs="all"),
    ):
        np.testing.assert_allclose(est.values, expected.numpy(), rtol=1e-12)
    induced = jacobian_estimate(psi2, S, R, v, mode="induced")
    np.testing.assert_allclose(induced.values, [float(B.abs().sum(1).max())] * 5, rtol=1e-12)


def test_safety_factor_scales_but_never_certifies():
    psi2, S, R, v, _ = _affine_problem()
    base = secant_estimate(psi2, S, R, v)
    scaled = secant_estimate(psi2, S, R, v, safety_factor=2.0)
    np.testing.assert_allclose(scaled.values, 2 * np.asarray(base.values))
    assert scaled.certified is False
    assert jacobian_estimate(psi2, S, R, v, safety_factor=10.0).certified is False


def test_positions_and_zero_direction():
    # layer applied at P = 3 positions: u has shape (B, P, n); R = 0 gives 0
    B = torch.randn(2, 3, dtype=torch.float64)

    def psi2(u):
        return torch.relu(u).sum(dim=1) @ B.T

    S = torch.randn(3, 4, dtype=torch.float64)
    v = torch.randn(5, 3, 4, dtype=torch.float64)
    for est in (jacobian_estimate(psi2, S, torch.zeros_like(S), v),
                secant_estimate(psi2, S, torch.zeros_like(S), v)):
        assert est.values == (0.0,) * 5
    R = torch.randn(3, 4, dtype=torch.float64)
    e1 = jacobian_estimate(psi2, S, R, v, mode="induced")
    assert len(e1) == 5 and max(e1.values) > 0


def test_registered_as_estimates():
    reg = registered_results()
    assert reg["THEORY-1.7-E1"][0].kind == "E"
    assert reg["THEORY-1.7-E2"][0].kind == "E"


def test_docstrings_say_lower_estimates():
    for fn in (jacobian_estimate, secant_estimate):
        assert "lower estimate" in fn.__doc__ and "not a bound" in fn.__doc__


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_grid=1), ValueError, "n_grid"),
        (dict(safety_factor=0.0), ValueError, "safety_factor"),
        (dict(safety_factor=float("inf")), ValueError, "safety_factor"),
        (dict(dtype=torch.int64), ValueError, "dtype"),
        (dict(mode="both"), ValueError, "mode"),
    ],
)
def test_bad_input(kwargs, exc, match):
    psi2, S, R, v, _ = _affine_problem()
    with pytest.raises(exc, match=match):
        jacobian_estimate(psi2, S, R, v, **kwargs)


def test_bad_shapes_and_callables():
    psi2, S, R, v, _ = _affine_problem()
    with pytest.raises(ValueError, match="v must have last dimension"):
        secant_estimate(psi2, S, R, v[:, :2])
    with pytest.raises(ValueError, match="S and R"):
        secant_estimate(psi2, S, R[:2], v)
    with pytest.raises(ValueError, match="pairs"):
        secant_estimate(psi2, S, R, v, pairs="some")
    with pytest.raises(TypeError, match="psi2 must be callable"):
        secant_estimate(None, S, R, v)
    with pytest.raises(ValueError, match="psi2 must return logits"):
        secant_estimate(lambda u: u.sum(), S, R, v)
