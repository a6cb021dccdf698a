"""B_T(R) (M-eq. 8): definition, positions, streaming, provenance and bad input."""

import numpy as np
import pytest
import torch

from certkit import LipschitzBound, compute_budget, data_path_budget, perturbation_sizes
from certkit.budget import BudgetAccumulator, removed_sup_norms


def reference(R, V, L):
    R, V = np.asarray(R, float), np.asarray(V, float)
    if V.ndim == 2:
        V = V[:, None, :]
    sup = np.abs(np.einsum("nm,tpm->tpn", R, V)).max(axis=(1, 2))
    return 2 * np.mean(np.broadcast_to(L, sup.shape) * sup)


@pytest.mark.parametrize("shape", [(5, 7), (5, 3, 7)])
def test_matches_definition(shape):
    g = np.random.default_rng(0)
    R, V, L = g.normal(size=(4, 7)), g.normal(size=shape), g.uniform(0, 2, size=5)
    assert np.isclose(data_path_budget(R, V, L), reference(R, V, L), rtol=1e-12)
    eta = perturbation_sizes(R, V, L)
    assert eta.shape == (5,) and np.isclose(2 * eta.mean().item(), reference(R, V, L))


def test_positions_are_not_flattened():
    """A (|T|, P, m) input takes the sup over positions, not a flattened m·P vector."""
    R = torch.eye(2, dtype=torch.float64)
    V = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    assert data_path_budget(R, V, 1.0) == 6.0


def test_streaming_equals_one_shot_and_chunks():
    g = torch.Generator().manual_seed(1)
    R = torch.randn(30, 11, generator=g)
    V = torch.randn(17, 5, 11, generator=g)
    acc = BudgetAccumulator(R, chunk_elems=7)
    for i in range(0, 17, 4):
        acc.update(V[i : i + 4], 0.5)
    assert acc.n_samples == 17
    assert np.isclose(acc.budget, data_path_budget(R, V, 0.5), rtol=1e-12)


def test_provenance_labels():
    R, V = torch.randn(3, 4), torch.randn(6, 4)
    assert not compute_budget(R, V, 1.0).certified  # plain numbers: user-supplied
    cert = compute_budget(R, V, LipschitzBound((1.0,), certified=True, method="L0"))
    assert cert.certified and cert.lipschitz_method == "L0" and cert.label == "certified"
    est = compute_budget(R, V, LipschitzBound((2.0,), certified=False, method="estimate:secant"))
    assert not est.certified and est.label == "estimated"


def test_zero_budget_on_dead_inputs():
    V = torch.randn(8, 6)
    V[:, 2] = 0
    R = torch.zeros(4, 6)
    R[:, 2] = torch.randn(4)
    assert data_path_budget(R, V, 3.0) == 0.0
    assert removed_sup_norms(R, V).abs().max() == 0


@pytest.mark.parametrize(
    "R, V, L, match",
    [
        (np.ones((2, 3)), np.ones((4, 2)), 1.0, r"V must have last dimension m"),
        (np.ones((2, 3)), np.ones((0, 3)), 1.0, r"V must not be empty"),
        (np.ones((2, 3)), np.ones((4, 3)), -1.0, r"L must be >= 0"),
        (np.ones((2, 3)), np.ones((4, 3)), np.ones(3), r"L must be a scalar or have shape"),
        (np.ones(3), np.ones((4, 3)), 1.0, r"R must be 2-D"),
        (np.full((2, 3), np.nan), np.ones((4, 3)), 1.0, r"R contains NaN or Inf"),
        (np.ones((2, 3)), np.full((4, 3), np.inf), 1.0, r"V contains NaN or Inf"),
        (np.ones((2, 3)), np.ones(3), 1.0, r"V must be 2-D or 3-D"),
    ],
)
def test_bad_input_is_rejected(R, V, L, match):
    with pytest.raises(ValueError, match=match):
        data_path_budget(R, V, L)
