"""THEORY §1.4 factorisation of real torch models: ‖R v_s‖_∞ equals the layer-output change."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certkit import compute_budget, data_path_budget
from certkit.budget import removed_sup_norms
from certkit.factorize import layer_inputs, swapped_weight, weight_from_matrix, weight_matrix


def _output_change(model, module, x, S):
    """max over positions and channels of |out_A − out_S| per sample (via forward hooks)."""
    outs = []
    h = module.register_forward_hook(lambda _m, _i, o: outs.append(o.detach()))
    try:
        with torch.no_grad():
            model(x)
            with swapped_weight(module, S):
                model(x)
    finally:
        h.remove()
    return (outs[0] - outs[1]).reshape(x.shape[0], -1).abs().amax(dim=1)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2),
       st.integers(1, 2), st.integers(1, 2), st.integers(0, 10_000))
def test_conv_positions_give_the_exact_output_change(c_in, c_out, k, pad, stride, dil, seed):
    g = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=pad, stride=stride, dilation=dil).double()
    model = torch.nn.Sequential(torch.nn.Conv2d(2, c_in, 1).double(), torch.nn.ReLU(), conv,
                                torch.nn.ReLU(), torch.nn.Flatten()).double()
    x = torch.randn(3, 2, 7, 6, generator=g, dtype=torch.float64)
    A = weight_matrix(conv)
    keep = torch.rand(A.shape, generator=g) < 0.5
    S, R = A * keep, A * ~keep
    V = layer_inputs(model, conv, x)
    assert V.shape[0] == 3 and V.shape[2] == c_in * k * k
    got = removed_sup_norms(R, V)
    want = _output_change(model, conv, x, S)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert torch.equal(weight_matrix(conv), A)  # restored after the swap


def test_linear_tokens_and_batching():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 4).double()
    model = torch.nn.Sequential(torch.nn.Linear(3, 5).double(), torch.nn.GELU(), lin)
    x = torch.randn(6, 7, 3, dtype=torch.float64)  # 6 samples × 7 tokens
    V = layer_inputs(model, lin, x, batch_size=4)
    assert V.shape == (6, 7, 5)
    R = torch.randn(4, 5, dtype=torch.float64)
    S = weight_matrix(lin) - R
    want = _output_change(model, lin, x, S)
    assert torch.allclose(removed_sup_norms(R, V), want, rtol=1e-10)
    # the budget of the last layer with L_s = 1 bounds the logit change
    assert data_path_budget(R, V, 1.0) == pytest.approx(2 * want.mean().item(), rel=1e-10)
    assert compute_budget(R, V, 1.0).value == pytest.approx(2 * want.mean().item(), rel=1e-10)


def test_weight_round_trip_and_errors():
    conv = torch.nn.Conv2d(3, 4, 3)
    A = weight_matrix(conv)
    assert A.shape == (4, 27) and torch.equal(weight_from_matrix(conv, A), conv.weight.detach())
    with pytest.raises(ValueError, match=r"A must have shape \(4, 27\)"):
        weight_from_matrix(conv, torch.zeros(4, 26))
    with pytest.raises(NotImplementedError, match="groups"):
        weight_matrix(torch.nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(TypeError, match="nn.Linear or a plain nn.Conv2d"):
        weight_matrix(torch.nn.ReLU())
    shared = torch.nn.Linear(2, 2)
    twice = torch.nn.Sequential(shared, shared)
    with pytest.raises(RuntimeError, match="ran 2 times"):
        layer_inputs(twice, shared, torch.randn(1, 2))
    with pytest.raises(ValueError, match="non-empty"):
        layer_inputs(twice, shared, torch.randn(0, 2))
