"""The exported hypothesis strategies generate what their docstrings promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certkit.classification import mean_ce
from certkit.mlp import MLP
from certkit.testing import (
    CertificationProblem,
    SpikedMatrix,
    certification_problems,
    disjoint_splits,
    mask_splits,
    masks,
    mlps,
    nm_masks,
    spiked_matrices,
    weight_matrices,
)
from certkit.testing.strategies import MASK_PROBABILITIES


def _finite64(t):
    return t.dtype == torch.float64 and bool(torch.isfinite(t).all())


@given(weight_matrices(min_rows=2, max_rows=5, min_cols=3, max_cols=3))
@settings(deadline=None)
def test_weight_matrices_shape_and_dtype(W):
    assert 2 <= W.shape[0] <= 5 and W.shape[1] == 3
    assert _finite64(W)


@given(weight_matrices(scale=0.0))
@settings(deadline=None)
def test_weight_matrices_zero_scale(W):
    assert bool((W == 0).all())


@given(spiked_matrices())
@settings(deadline=None)
def test_spiked_matrices_have_the_requested_spectrum(sm):
    assert isinstance(sm, SpikedMatrix)
    assert sm.S.shape == sm.R.shape and _finite64(sm.S) and _finite64(sm.R)
    s = torch.linalg.svdvals(sm.S).numpy()
    r = len(sm.singular_values)
    np.testing.assert_allclose(s[:r], sm.singular_values, rtol=1e-10)
    assert np.all(s[r:] <= 1e-10 * (1 + max(sm.singular_values, default=0.0)))
    torch.testing.assert_close(sm.A, sm.S + sm.R)


@given(spiked_matrices(spikes=[5.0, 1.0], noise_scale=0.0, min_rows=3, min_cols=3))
@settings(deadline=None)
def test_spiked_matrices_fixed_spikes(sm):
    assert sm.singular_values == (5.0, 1.0)
    assert bool((sm.R == 0).all())


@given(weight_matrices().flatmap(lambda A: st.tuples(st.just(A), mask_splits(A))))
@settings(deadline=None)
def test_mask_splits_are_disjoint_and_exact(arg):
    A, (S, R) = arg
    assert torch.equal(S + R, A)
    assert bool((S * R == 0).all())


@given(disjoint_splits((4, 5), parts=3))
@settings(deadline=None)
def test_three_way_splits_are_pairwise_disjoint(parts):
    S, Q, P = parts
    for a, b in ((S, Q), (S, P), (Q, P)):
        assert bool(((a != 0) & (b != 0)).sum() == 0)
    assert S.shape == (4, 5)


@given(masks((3, 4), density=1.0), masks((3, 4), density=0.0))
@settings(deadline=None)
def test_masks_extreme_densities(full, empty):
    assert full.dtype == torch.bool and bool(full.all()) and not bool(empty.any())


@given(st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8)]).flatmap(
    lambda nm: st.tuples(st.just(nm), nm_masks((3, 2 * nm[1]), n=nm[0], m=nm[1]))))
@settings(deadline=None)
def test_nm_masks_keep_n_of_every_m(arg):
    (n, m), M = arg
    groups = M.reshape(M.shape[0], -1, m)
    assert bool((groups.sum(dim=2) == n).all())


@given(mlps(max_depth=3, max_width=5, activation="abs", final_activation=True))
@settings(deadline=None)
def test_mlps_respect_options(mlp):
    assert isinstance(mlp, MLP)
    assert 1 <= mlp.depth <= 3 and mlp.activation == "abs" and mlp.final_activation
    assert all(w <= 5 for w in mlp.widths[:-1]) and 2 <= mlp.widths[-1] <= 8
    assert all(_finite64(W) for W in mlp.weights)


@given(certification_problems())
@settings(deadline=None)
def test_certification_problems_are_consistent(p):
    assert isinstance(p, CertificationProblem)
    assert torch.equal(p.S + p.R, p.mlp.weights[p.k])
    assert bool((p.S * p.R == 0).all())
    n = p.x.shape[0]
    assert 1 <= n <= 12 and 0.0 <= p.theta <= 1.0
    assert p.labels.shape == (n,) and int(p.labels.max()) < p.mlp.widths[-1]
    assert p.v.shape == (n, p.mlp.widths[p.k])
    torch.testing.assert_close(p.logits(), p.mlp(p.x))
    torch.testing.assert_close(p.logits(p.A_theta()), p.mlp.psi2(p.k, p.v @ p.A_theta().T))
    assert p.ce() == pytest.approx(mean_ce(p.mlp(p.x), p.labels))


@given(certification_problems(density=0.0, theta=0.25))
@settings(deadline=None)
def test_certification_problems_options(p):
    assert bool((p.S == 0).all()) and p.theta == 0.25


def test_mask_probabilities_match_the_spec():
    assert MASK_PROBABILITIES == (0.0, 0.3, 0.7, 1.0)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: weight_matrices(min_rows=0), ValueError, "min_rows"),
        (lambda: weight_matrices(min_cols=3, max_cols=2), ValueError, "max_cols"),
        (lambda: weight_matrices(scale=-1.0), ValueError, "scale"),
        (lambda: weight_matrices(max_rows=2.5), TypeError, "max_rows"),
        (lambda: mlps(min_depth=0), ValueError, "min_depth"),
        (lambda: mlps(activation="tanh"), ValueError, "activation"),
        (lambda: masks((3, 4), density=1.5), ValueError, "density"),
        (lambda: masks((3,)), ValueError, "shape"),
        (lambda: nm_masks((2, 6), n=2, m=4), ValueError, "multiple of m"),
        (lambda: nm_masks((2, 8), n=5, m=4), ValueError, "n == 5"),
        (lambda: disjoint_splits((2, 2), parts=0), ValueError, "parts"),
        (lambda: certification_problems(max_samples=0), ValueError, "max_samples"),
        (lambda: certification_problems(theta=2.0), ValueError, "theta"),
        (lambda: mask_splits(torch.zeros(3)), ValueError, "2-D"),
    ],
)
def test_invalid_arguments_fail_at_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
