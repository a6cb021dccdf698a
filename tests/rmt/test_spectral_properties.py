"""Property tests of the deterministic spectral ingredients [D] (THEORY §2.4.7, §2.4.8, §2.5.10).

Every example is a small matrix (≤ 12×12) so that the ``ci`` profile (≥ 200 examples) stays
fast. Each property has a negative control showing the check has teeth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certkit.exceptions import PreconditionError
from certkit.rmt import (
    eckart_young_tail_bound,
    markov_count_bound,
    rank_inequality_bound,
    singular_values,
    wedin_bound,
    weyl_bound,
)

dims = st.integers(min_value=1, max_value=12)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
scales = st.sampled_from([0.0, 1e-6, 1e-2, 0.3, 1.0, 10.0, 1e4])


def _matrix(rng, n, m, scale, kind):
    if kind == "gauss":
        A = rng.standard_normal((n, m))
    elif kind == "lowrank":
        r = int(rng.integers(0, min(n, m) + 1))
        A = rng.standard_normal((n, r)) @ rng.standard_normal((r, m))
    elif kind == "sparse":
        A = rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.3)
    else:  # "ties": repeated singular values
        A = np.zeros((n, m))
        np.fill_diagonal(A, 1.0)
    return scale * A


kinds = st.sampled_from(["gauss", "lowrank", "sparse", "ties"])


@st.composite
def pairs(draw):
    n, m, seed = draw(dims), draw(dims), draw(seeds)
    rng = np.random.default_rng(seed)
    S = _matrix(rng, n, m, draw(scales), draw(kinds))
    R = _matrix(rng, n, m, draw(scales), draw(kinds))
    return S, R


@settings(deadline=None)
@given(pairs())
def test_weyl(SR):
    """M-Cor 4.10 / E-Cor 3.24 (b): Weyl |s_i(S+R) − s_i(S)| ≤ ‖R‖_op."""
    S, R = SR
    cert = weyl_bound(S, R)
    assert cert.holds, cert
    assert cert.details["R_op"] <= cert.details["R_fro"] * (1 + 1e-12) + 1e-300  # (a)


def test_weyl_negative_control():
    R = np.diag([1.0, 0.5])
    cert = weyl_bound(np.zeros((2, 2)), R)
    assert cert.lhs == pytest.approx(cert.rhs)  # tight at S = 0
    assert cert.lhs > cert.rhs / 2  # halving the constant fails


@settings(deadline=None)
@given(pairs(), st.integers(min_value=0, max_value=13))
def test_eckart_young_tail(SR, k):
    """M-Cor 4.10 / E-Cor 3.24 (c): Eckart–Young tail bound."""
    S, R = SR
    cert = eckart_young_tail_bound(S, R, k)
    assert cert.holds, cert
    assert cert.rhs <= cert.details["loose_rhs"] * (1 + 1e-12) + 1e-300


def test_eckart_young_negative_control():
    # dropping the cross term, tail(S+R) <= tail(S) + ||R||_F², fails for S = I, R = εI, k = 1
    eps = 0.1
    cert = eckart_young_tail_bound(np.eye(2), eps * np.eye(2), 1)
    assert cert.holds
    assert cert.lhs > cert.details["tail_S"] + cert.details["R_fro"] ** 2


@settings(deadline=None)
@given(dims, dims, seeds, scales, kinds, st.floats(min_value=1e-3, max_value=1e3))
def test_markov_count(n, m, seed, scale, kind, eps):
    """M-Cor 4.10 / E-Cor 3.24 (d): ν_W((ε,∞)) ≤ ‖W‖_F²/(min(N,M)ε²)."""
    W = _matrix(np.random.default_rng(seed), n, m, scale, kind)
    cert = markov_count_bound(W, eps)
    assert cert.holds, cert


def test_markov_negative_control():
    W = 1.01 * np.eye(4)
    cert = markov_count_bound(W, 1.0)
    assert cert.lhs == 1.0 and cert.holds
    assert cert.lhs > cert.rhs / 2


@st.composite
def gapped_pairs(draw):
    n, m, seed = draw(dims), draw(dims), draw(seeds)
    p = min(n, m)
    k = draw(st.integers(min_value=1, max_value=p))
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, n)))[0][:, :p]
    V = np.linalg.qr(rng.standard_normal((m, m)))[0][:, :p]
    top = 1.0 + rng.random(k) * 3
    rest = rng.random(p - k) * draw(st.sampled_from([0.0, 0.2, 0.9]))
    s = np.concatenate([top, rest])
    S = (U * s) @ V.T
    frac = draw(st.sampled_from([0.01, 0.1, 0.3, 0.45, 0.7, 0.95]))
    delta = np.min(top) - (np.max(rest) if rest.size else 0.0)
    R = rng.standard_normal((n, m))
    R *= frac * delta / np.linalg.norm(R, 2)
    return S, R, k


@settings(deadline=None)
@given(gapped_pairs())
def test_wedin(case):
    """M-Cor 4.11 / E-Cor 3.25: explicit Wedin constant (spec addition)."""
    S, R, k = case
    cert = wedin_bound(S, R, k)
    assert cert.holds, cert
    d = cert.details
    assert d["gap_W"] >= d["gap_lower_bound"] - 1e-9 * max(1.0, d["delta_k"])


def test_wedin_negative_control_and_preconditions():
    eps = 0.05
    S = np.diag([1.0, 0.0])
    R = np.array([[0.0, eps], [eps, 0.0]])
    cert = wedin_bound(S, R, 1)
    assert cert.holds
    assert cert.lhs > cert.rhs / 2  # the constant cannot be halved
    with pytest.raises(PreconditionError, match="R"):
        wedin_bound(S, 2 * np.eye(2), 1)
    with pytest.raises(PreconditionError, match="gap"):
        wedin_bound(np.eye(2), R, 1)
    with pytest.raises(ValueError, match="k"):
        wedin_bound(S, R, 3)


@st.composite
def lowrank_pairs(draw):
    n, m, seed = draw(dims), draw(dims), draw(seeds)
    rng = np.random.default_rng(seed)
    r = draw(st.integers(min_value=0, max_value=min(n, m)))
    S = draw(scales) * rng.standard_normal((n, r)) @ rng.standard_normal((r, m))
    R = _matrix(rng, n, m, draw(scales), draw(kinds))
    return S, R


@settings(deadline=None)
@given(lowrank_pairs())
def test_rank_inequality(SR):
    """E-Prop 3.30 (ii): sup_x |F_W − F_R| ≤ rank(S)/min(N,M)."""
    S, R = SR
    cert = rank_inequality_bound(S, R)
    assert cert.holds, cert


def test_rank_inequality_negative_control():
    S = np.zeros((5, 4))
    S[0, 0] = 3.0
    cert = rank_inequality_bound(S, np.zeros((5, 4)))
    assert cert.lhs == pytest.approx(cert.rhs) == pytest.approx(1 / 4)
    assert cert.lhs > (cert.details["rank"] - 1) / cert.details["p"]  # rank - 1 is too small


@settings(deadline=None)
@given(dims, dims, seeds, scales, kinds)
def test_singular_values_relation(n, m, seed, scale, kind):
    """M-Def 2.1: eigenvalues of WᵀW = squared singular values + (M − min) zeros."""
    W = _matrix(np.random.default_rng(seed), n, m, scale, kind)
    s = singular_values(W)
    assert s.shape == (min(n, m),) and np.all(np.diff(s) <= 0) and np.all(s >= 0)
    ev = np.sort(np.linalg.eigvalsh(W.T @ W))
    expect = np.sort(np.concatenate([s**2, np.zeros(m - min(n, m))]))
    tol = 1e-10 * max(1.0, float(s[0]) ** 2) if s.size else 1e-10
    np.testing.assert_allclose(ev, expect, atol=tol)


def test_bad_inputs():
    with pytest.raises(ValueError, match="S and R"):
        weyl_bound(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="eps"):
        markov_count_bound(np.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="W"):
        singular_values(np.ones(3))
    with pytest.raises(ValueError, match="method"):
        singular_values(np.ones((2, 2)), method="qr")
    with pytest.raises(ValueError, match="k"):
        eckart_young_tail_bound(np.ones((2, 2)), np.ones((2, 2)), -1)
    assert math.isfinite(weyl_bound(np.ones((2, 2)), np.ones((2, 2))).rhs)
