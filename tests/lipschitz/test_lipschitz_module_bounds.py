"""Module-chain ℓ∞ Lipschitz bounds (THEORY-1.6-modules, THEORY §1.6 "friends"): constants, conv norms,
chains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import norm
from torch import nn

from certkit.lipschitz import (
    GELU_LIPSCHITZ,
    GELU_TANH_LIPSCHITZ,
    SILU_LIPSCHITZ,
    Abs,
    Residual,
    UnsupportedModuleError,
    chain_lipschitz_bound,
    chain_lipschitz_report,
    lipschitz_L0,
    module_lipschitz_constant,
    residual_lipschitz,
)
from certkit.testing import mlps


def _linf_ratio(f, x, y):
    with torch.no_grad():
        num = (f(x) - f(y)).reshape(x.shape[0], -1).abs().amax(1)
    den = (x - y).reshape(x.shape[0], -1).abs().amax(1)
    return float((num / den).max())


# ----------------------------------------------------------------------------- constants
def _sup_abs_derivative(fn, lo=-10.0, hi=10.0):
    """sup |f'| by a dense autograd grid plus a bounded local refinement (float64)."""
    def deriv(x):
        t = torch.tensor([x], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(fn(t).sum(), t)
        return abs(float(g))

    grid = torch.linspace(lo, hi, 200001, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(grid).sum(), grid)
    i = int(g.abs().argmax())
    x0, h = float(grid[i].detach()), (hi - lo) / 200000
    res = minimize_scalar(lambda x: -deriv(x), bounds=(x0 - 2 * h, x0 + 2 * h),
                          method="bounded", options={"xatol": 1e-12})
    return max(float(g.abs().max()), -res.fun)


@pytest.mark.parametrize(
    "module, const",
    [
        (nn.GELU(), GELU_LIPSCHITZ),
        (nn.GELU(approximate="tanh"), GELU_TANH_LIPSCHITZ),
        (nn.SiLU(), SILU_LIPSCHITZ),
    ],
)
def test_smooth_activation_constants_numerically(module, const):
    sup = _sup_abs_derivative(module)
    assert sup <= const  # rigorous: the stored constant is rounded up
    assert const - sup < 1e-9
    assert module_lipschitz_constant(module) == const


def test_gelu_closed_form():
    s2 = math.sqrt(2.0)
    exact = norm.cdf(s2) + s2 * norm.pdf(s2)
    assert exact <= GELU_LIPSCHITZ < exact + 1e-12
    assert round(GELU_LIPSCHITZ, 6) == 1.128904
    assert round(GELU_TANH_LIPSCHITZ, 6) == 1.128993
    assert round(SILU_LIPSCHITZ, 6) == 1.099839


@pytest.mark.parametrize(
    "module, const",
    [
        (nn.ReLU(), 1.0), (Abs(), 1.0), (nn.Tanh(), 1.0), (nn.Sigmoid(), 0.25),
        (nn.LeakyReLU(0.01), 1.0), (nn.LeakyReLU(-2.5), 2.5), (nn.ELU(alpha=2.0), 2.0),
        (nn.Hardswish(), 1.5), (nn.Hardsigmoid(), 1 / 6), (nn.Softplus(), 1.0),
        (nn.ReLU6(), 1.0), (nn.Identity(), 1.0), (nn.Flatten(), 1.0),
        (nn.MaxPool2d(2), 1.0), (nn.AvgPool2d(3), 1.0), (nn.AdaptiveAvgPool2d(1), 1.0),
        (nn.AvgPool2d(2, divisor_override=2), 2.0), (nn.Dropout(0.5).eval(), 1.0),
    ],
)
def test_elementwise_and_structural_constants(module, const):
    assert module_lipschitz_constant(module) == pytest.approx(const, rel=1e-15)


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.Sigmoid(), (64, 10)), (nn.Tanh(), (64, 10)), (nn.LeakyReLU(-2.5), (64, 10)),
        (nn.Hardswish(), (64, 10)), (nn.ELU(alpha=2.0), (64, 10)),
        (nn.MaxPool2d(2), (16, 3, 6, 6)), (nn.AvgPool2d(3, stride=1, padding=1), (16, 3, 6, 6)),
        (nn.AvgPool2d(2, divisor_override=1), (16, 3, 6, 6)),
        (nn.AdaptiveAvgPool2d(2), (16, 3, 5, 7)),
    ],
)
def test_constants_dominate_empirical_ratios(module, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    y = x + 1e-3 * torch.randn(*shape, generator=g, dtype=torch.float64)
    assert _linf_ratio(module, x, y) <= module_lipschitz_constant(module) * (1 + 1e-9)


# ----------------------------------------------------------------------------- convolutions
@st.composite
def conv_modules(draw):
    dim = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    if transposed:
        cls = nn.ConvTranspose1d if dim == 1 else nn.ConvTranspose2d
        m = cls(cin, cout, k, stride=stride, dilation=dilation, groups=groups,
                padding=draw(st.integers(0, (k - 1) * dilation)))
    else:
        cls = nn.Conv1d if dim == 1 else nn.Conv2d
        mode = draw(st.sampled_from(["zeros", "reflect", "circular", "replicate"]))
        m = cls(cin, cout, k, stride=stride, dilation=dilation, groups=groups,
                padding=draw(st.integers(0, 1)), padding_mode=mode)
    return m.double(), dim, cin, seed


@given(conv_modules())
@settings(deadline=None)
def test_conv_bound_dominates_empirical_ratio(arg):
    m, dim, cin, seed = arg
    g = torch.Generator().manual_seed(seed)
    shape = (4, cin) + (6,) * dim
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    # worst-case-like perturbations: sign patterns (‖Δ‖_∞ = 1 everywhere)
    y = x + torch.sign(torch.randn(*shape, generator=g, dtype=torch.float64))
    assert _linf_ratio(m, x, y) <= module_lipschitz_constant(m) * (1 + 1e-12)


def test_conv_bound_is_attained_at_an_interior_pixel():
    torch.manual_seed(1)
    m = nn.Conv2d(3, 4, 3, bias=True).double()
    w = m.weight.detach()
    o = int(w.abs().sum(dim=(1, 2, 3)).argmax())
    x = torch.zeros(1, 3, 5, 5, dtype=torch.float64)
    y = x.clone()
    y[0, :, 1:4, 1:4] = torch.sign(w[o])
    assert _linf_ratio(m, y, x) == pytest.approx(module_lipschitz_constant(m), rel=1e-12)


def test_grouped_conv_uses_only_the_group():
    m = nn.Conv2d(4, 2, 1, groups=2, bias=False).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[[[1.0]], [[-2.0]]], [[[3.0]], [[0.5]]]]))
    assert module_lipschitz_constant(m) == 3.5


# ----------------------------------------------------------------------------- batchnorm / dropout
def test_batchnorm_eval_and_training():
    bn = nn.BatchNorm1d(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -4.0, 0.5], dtype=torch.float64))
        bn.running_var.copy_(torch.tensor([1.0, 3.0, 0.01], dtype=torch.float64))
    with pytest.raises(ValueError, match="training mode"):
        module_lipschitz_constant(bn)
    bn.eval()
    expected = max(1 / math.sqrt(1 + bn.eps), 4 / math.sqrt(3 + bn.eps),
                   0.5 / math.sqrt(0.01 + bn.eps))
    assert module_lipschitz_constant(bn) == pytest.approx(expected, rel=1e-14)
    x = torch.randn(32, 3, dtype=torch.float64)
    assert _linf_ratio(bn, x, x + torch.randn_like(x)) <= expected * (1 + 1e-12)
    nostats = nn.BatchNorm1d(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="track_running_stats"):
        module_lipschitz_constant(nostats)
    with pytest.raises(ValueError, match="training mode"):
        module_lipschitz_constant(nn.Dropout(0.1))


# ----------------------------------------------------------------------------- chains vs MLP L0
def _downstream_chain(mlp, k):
    act = (lambda: nn.ReLU()) if mlp.activation == "relu" else (lambda: Abs())
    mods = []
    if k < mlp.depth - 1 or mlp.final_activation:
        mods.append(act())
    for j in range(k + 1, mlp.depth):
        W = mlp.weights[j]
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(mlp.biases[j])
        mods.append(lin)
        if j < mlp.depth - 1 or mlp.final_activation:
            mods.append(act())
    return nn.Sequential(*mods)


@given(mlps(), st.data())
@settings(deadline=None)
def test_chain_bound_equals_mlp_L0(mlp, data):
    k = data.draw(st.integers(0, mlp.depth - 1))
    chain = _downstream_chain(mlp, k)
    b = chain_lipschitz_bound(chain)
    ref = lipschitz_L0(mlp, k)
    assert b.certified and b.method == "L0" and not b.path_dependent
    assert b.values[0] == pytest.approx(ref.values[0], rel=1e-12, abs=1e-300)
    # the chain computes ψ2 (pre-bias input u = A v: add b_k first)
    u = torch.randn(3, mlp.widths[k + 1], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(chain(u + mlp.biases[k]), mlp.psi2(k, u))


def test_nested_sequential_and_residual():
    lin = nn.Linear(3, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 2.0]]))
    block = Residual(nn.Sequential(lin, nn.ReLU()))
    chain = nn.Sequential(nn.Sequential(block, nn.Sigmoid()), nn.Flatten())
    assert chain_lipschitz_bound(chain).values == ((1 + 2.0) * 0.25,)
    assert residual_lipschitz(2.0) == 3.0
    x = torch.randn(50, 3, dtype=torch.float64)
    assert _linf_ratio(block, x, x + 0.1 * torch.randn_like(x)) <= 3.0 * (1 + 1e-12)
    rep = chain_lipschitz_report([block, nn.Sigmoid()])
    assert [f.name for f in rep.factors] == ["Residual", "Sigmoid"]
    assert chain_lipschitz_bound([]).values == (1.0,)
    with pytest.raises(ValueError, match="inner"):
        residual_lipschitz(-1.0)


# ----------------------------------------------------------------------------- unknown modules
def test_unknown_module_raises_naming_the_type():
    chain = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with pytest.raises(UnsupportedModuleError, match="LayerNorm"):
        chain_lipschitz_bound(chain)
    with pytest.raises(NotImplementedError):
        module_lipschitz_constant(nn.LayerNorm(4))
    with pytest.raises(ValueError, match="example_input"):
        chain_lipschitz_bound(chain, allow_estimate=True)


def test_unknown_module_estimate_fallback_is_uncertified():
    torch.manual_seed(0)
    chain = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.ReLU())
    x = torch.randn(6, 4)
    b = chain_lipschitz_bound(chain, allow_estimate=True, example_input=x)
    assert b.certified is False and b.method == "estimate:jacobian"
    rep = chain_lipschitz_report(chain, allow_estimate=True, example_input=x)
    assert [f.certified for f in rep.factors] == [True, False, True]
    assert rep.factors[1].value > 0
    # user-vouched constant overrides the rule and keeps certification
    b2 = chain_lipschitz_bound(chain, constants={nn.LayerNorm: 10.0})
    assert b2.certified and b2.values[0] == pytest.approx(
        module_lipschitz_constant(chain[0]) * 10.0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="modules"):
        chain_lipschitz_bound(3)
    with pytest.raises(TypeError, match=r"modules\[1\]"):
        chain_lipschitz_bound([nn.ReLU(), "relu"])
    with pytest.raises(TypeError, match="module must be"):
        module_lipschitz_constant("relu")


def test_linear_is_induced_inf_norm():
    lin = nn.Linear(3, 2).double()
    W = lin.weight.detach()
    assert module_lipschitz_constant(lin) == pytest.approx(float(np.abs(W.numpy()).sum(1).max()))
