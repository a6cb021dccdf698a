"""THEORY §1.1 norm facts, property-tested (a bare ``l1`` is never exposed, Trap T3)."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from certkit import norms

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
mats = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda s: arrays(np.float64, s, elements=finite))


@given(mats, st.data())
def test_induced_inf_is_the_sup_of_the_ratio(A, data):
    x = data.draw(arrays(np.float64, (A.shape[1],), elements=finite))
    assert np.abs(A @ x).max() <= norms.induced_inf(A) * np.abs(x).max() * (1 + 1e-12) + 1e-9
    # attained at x = sign(row_i) for the maximising row
    i = np.abs(A).sum(1).argmax()
    xs = np.sign(A[i])
    assert np.isclose(np.abs(A @ xs).max(), norms.induced_inf(A), rtol=1e-12, atol=1e-12)


@given(mats)
def test_norm_conventions(A):
    assert np.isclose(norms.entrywise_l1(A), np.abs(A).sum())
    assert np.isclose(norms.fro(A), np.linalg.norm(A, "fro"))
    assert np.isclose(norms.op(A), np.linalg.norm(A, 2), rtol=1e-9, atol=1e-9)
    assert norms.op(A) <= norms.fro(A) * (1 + 1e-12) + 1e-12
    assert np.isclose(norms.induced_inf(A), np.linalg.norm(A, np.inf))


def test_op_norm_times_sup_norm_is_not_a_bound():
    """Counterexample of THEORY §1.1 / Trap T12: ‖Ax‖_∞ ≤ ‖A‖_op‖x‖_∞ is false."""
    m = 16
    A, x = np.ones((1, m)), np.ones(m)
    assert np.abs(A @ x).max() > norms.op(A) * np.abs(x).max()


def test_accepts_torch_and_inner_product():
    S, R = torch.randn(3, 4), torch.randn(3, 4)
    assert np.isclose(norms.frobenius_inner(S, R), float((S.double() * R.double()).sum()))


def test_op_gram_path_for_large_matrices_matches_svd():
    A = np.random.default_rng(3).normal(size=(90, 150))
    assert np.isclose(norms.op(A), np.linalg.norm(A, 2), rtol=1e-12)
    assert np.isclose(norms.op(A.T), np.linalg.norm(A, 2), rtol=1e-12)
