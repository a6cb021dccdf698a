"""Property tests of THEORY-1.6-L1-chain (`chain_l1_bound`).

``chain_l1_bound`` (THEORY §1.6, L1 rule extended to module chains): soundness on random chains,
L1 ≤ L0, equality with ``lipschitz_L1`` on MLP tails, a negative control, and the error cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st
from torch import nn

from certkit.lipschitz import (
    Abs,
    UnsupportedModuleError,
    chain_l1_bound,
    chain_lipschitz_bound,
    lipschitz_L1,
)
from certkit.testing import mlps

EPS = float(torch.finfo(torch.float64).eps)
#: Soundness tolerance relative to L (THEORY §0.3); rounding of f itself is allowed for separately.
REL_TOL = 1e-9


# ----------------------------------------------------------------------------- helpers
def _rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _log_uniform(rng, lo, hi) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _set(param: torch.Tensor, values) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(np.asarray(values), dtype=param.dtype).reshape(param.shape))


def _linear(rng, n_in: int, n_out: int) -> nn.Linear:
    lin = nn.Linear(n_in, n_out).double()
    W = rng.normal(0.0, _log_uniform(rng, 1e-2, 3.0), size=(n_out, n_in))
    if rng.random() < 0.3:
        W[rng.random(W.shape) < 0.3] = 0.0
    _set(lin.weight, W)
    _set(lin.bias, rng.normal(size=n_out))
    return lin


def _batchnorm(rng, cls, c: int) -> nn.Module:
    bn = cls(c).double()
    _set(bn.running_mean, rng.normal(size=c))
    _set(bn.running_var, np.exp(rng.uniform(math.log(1e-2), math.log(4.0), size=c)))
    _set(bn.weight, rng.normal(0.0, 2.0, size=c))       # negative γ included
    _set(bn.bias, rng.normal(size=c))
    return bn.eval()


def _activation(rng, kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "abs":
        return Abs()
    if kind == "tanh":
        return nn.Tanh()
    return nn.LeakyReLU(float(rng.uniform(-3.0, 3.0)))


@st.composite
def mlp_chains(draw):
    """Chains of Linear / ReLU / Abs / Tanh / LeakyReLU / eval BatchNorm1d on (B, width) inputs."""
    rng = _rng(draw)
    width = n_in = draw(st.integers(1, 8))
    kinds = draw(st.lists(st.sampled_from(["linear", "linear", "relu", "abs", "tanh", "leaky", "bn"]),
                          min_size=1, max_size=7))
    mods: list[nn.Module] = []
    for kind in kinds:
        if kind == "linear":
            out = draw(st.integers(1, 8))
            mods.append(_linear(rng, width, out))
            width = out
        elif kind == "bn":
            mods.append(_batchnorm(rng, nn.BatchNorm1d, width))
        else:
            mods.append(_activation(rng, kind))
    return nn.Sequential(*mods).eval(), (n_in,)


@st.composite
def conv_chains(draw):
    """Conv2d / ReLU / AvgPool2d / MaxPool2d / eval BatchNorm2d, then Flatten and Linear."""
    rng = _rng(draw)
    c = c_in = draw(st.integers(1, 3))
    side = h = draw(st.integers(4, 8))
    mods: list[nn.Module] = []
    for kind in draw(st.lists(st.sampled_from(["conv", "conv", "relu", "avg", "max", "bn"]),
                              min_size=1, max_size=5)):
        if kind == "conv":
            k = draw(st.integers(1, 3))
            pad = draw(st.integers(0, k // 2))
            stride = draw(st.integers(1, 2))
            if h + 2 * pad < k:
                continue
            out = draw(st.integers(1, 4))
            mode = draw(st.sampled_from(["zeros", "circular"])) if pad else "zeros"
            conv = nn.Conv2d(c, out, k, stride=stride, padding=pad, padding_mode=mode).double()
            _set(conv.weight, rng.normal(0.0, _log_uniform(rng, 1e-2, 2.0), size=conv.weight.shape))
            _set(conv.bias, rng.normal(size=out))
            mods.append(conv)
            c, h = out, (h + 2 * pad - k) // stride + 1
        elif kind in ("avg", "max"):
            if h < 2:
                continue
            mods.append(nn.AvgPool2d(2) if kind == "avg" else nn.MaxPool2d(2))
            h //= 2
        elif kind == "bn":
            mods.append(_batchnorm(rng, nn.BatchNorm2d, c))
        else:
            mods.append(nn.ReLU())
    mods += [nn.Flatten(), _linear(rng, c * h * h, draw(st.integers(1, 5)))]
    if draw(st.booleans()):
        mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval(), (c_in, side, side)


def _max_ratio_excess(chain: nn.Module, shape: tuple[int, ...], L: float, seed: int) -> float:
    """Largest ``ratio − L − allowance`` over random and gradient-sign pairs (x, x').

    ratio = ‖f(x) − f(x')‖_∞ / ‖x − x'‖_∞; the allowance covers L·REL_TOL and the float64
    rounding of f. Positive = the bound L is violated on some pair.
    """
    gen = torch.Generator().manual_seed(seed)
    B = 16
    x = torch.randn(B, *shape, generator=gen, dtype=torch.float64) * 2.0
    pairs = []
    for scale in (1e-3, 1e-1, 1.0, 10.0):
        pairs.append((x, x + scale * torch.randn(x.shape, generator=gen, dtype=torch.float64)))
    # gradient-sign direction of every output coordinate: ‖J_i‖_1 is what L must dominate
    xg = x.clone().requires_grad_(True)
    out = chain(xg)
    for j in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), xg, retain_graph=True)
        for h in (1e-4, 1e-2):
            pairs.append((x, x + h * torch.sign(g)))
    worst = -math.inf
    with torch.no_grad():
        for a, b in pairs:
            fa, fb = chain(a), chain(b)
            num = (fa - fb).reshape(B, -1).abs().amax(1)
            den = (a - b).reshape(B, -1).abs().amax(1)
            mag = torch.maximum(fa.abs(), fb.abs()).reshape(B, -1).amax(1)
            ok = den > 0
            allowance = REL_TOL * L + 64 * EPS * mag / den.clamp_min(1e-300)
            excess = (num / den.clamp_min(1e-300) - L - allowance)[ok]
            if excess.numel():
                worst = max(worst, float(excess.max()))
    return worst


# ----------------------------------------------------------------------------- (a) soundness
@given(st.one_of(mlp_chains(), conv_chains()), st.integers(0, 2**31 - 1))
def test_l1_chain_is_sound(chain_shape, seed):
    chain, shape = chain_shape
    b = chain_l1_bound(chain)
    assert b.certified and b.method == "L1-chain" and not b.path_dependent and len(b.values) == 1
    assert math.isfinite(b.max) and b.max >= 0
    assert _max_ratio_excess(chain, shape, b.max, seed) <= 0.0


# ----------------------------------------------------------------------------- (b) L1 ≤ L0
@given(st.one_of(mlp_chains(), conv_chains()))
def test_l1_chain_never_exceeds_l0(chain_shape):
    chain, _ = chain_shape
    l1, l0 = chain_l1_bound(chain).max, chain_lipschitz_bound(chain).max
    assert l1 <= l0 * (1 + 1e-12) + 1e-300


def test_l1_chain_is_strictly_tighter_than_l0_on_sign_cancellation():
    # |W2|(|W1| 1) = |W2|[2, 0] = [2, 0] but ‖W2‖∞‖W1‖∞ = 2·2: the L1 rule tracks which inputs
    # feed which output
    l1 = nn.Linear(2, 2, bias=False).double()
    l2 = nn.Linear(2, 2, bias=False).double()
    _set(l1.weight, [[1.0, 1.0], [0.0, 0.0]])
    _set(l2.weight, [[1.0, 0.0], [0.0, 2.0]])
    chain = nn.Sequential(l1, nn.ReLU(), l2)
    assert chain_l1_bound(chain).max == pytest.approx(2.0, rel=1e-15)
    assert chain_lipschitz_bound(chain).max == pytest.approx(4.0, rel=1e-15)


# ----------------------------------------------------------------------------- (c) = lipschitz_L1
def _mlp_tail(mlp, k: int) -> nn.Sequential:
    """ψ2 of ``certkit.mlp.MLP`` after layer k as torch modules (the layer's bias is added by the
    caller; its activation is the chain's first module)."""
    act = nn.ReLU if mlp.activation == "relu" else Abs
    mods: list[nn.Module] = []
    if k < mlp.depth - 1 or mlp.final_activation:
        mods.append(act())
    for j in range(k + 1, mlp.depth):
        W = mlp.weights[j]
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        _set(lin.weight, W.numpy())
        _set(lin.bias, mlp.biases[j].numpy())
        mods.append(lin)
        if j < mlp.depth - 1 or mlp.final_activation:
            mods.append(act())
    return nn.Sequential(*mods)


@given(mlps(), st.data())
def test_equals_lipschitz_L1_on_mlp_tails(mlp, data):
    k = data.draw(st.integers(0, mlp.depth - 1))
    chain = _mlp_tail(mlp, k)
    ref = lipschitz_L1(mlp, k).max
    got = chain_l1_bound(chain).max
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-300)
    # the chain is ψ2: same logits as the MLP's own factorisation
    u = torch.randn(3, mlp.widths[k + 1], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(chain(u + mlp.biases[k]), mlp.psi2(k, u), rtol=1e-12, atol=1e-12)


def test_eval_batchnorm1d_collapses_the_bound():
    # g = |W| 1 = [1, 3]; BN is not treated per feature (its channel axis need not be the axis of
    # the next Linear), so the bound collapses to max g · max|γ|/σ = 3 · 10 = L0 (sound, not tight)
    lin = nn.Linear(2, 2, bias=False).double()
    _set(lin.weight, [[1.0, 0.0], [1.0, 2.0]])
    bn = nn.BatchNorm1d(2).double().eval()
    bn.eps = 0.0
    _set(bn.running_var, [1.0, 1.0])
    _set(bn.weight, [10.0, -0.1])
    chain = nn.Sequential(lin, bn)
    assert chain_l1_bound(chain).max == pytest.approx(30.0, rel=1e-15)
    assert chain_lipschitz_bound(chain).max == pytest.approx(30.0, rel=1e-15)
    assert _max_ratio_excess(chain, (2,), 30.0, 0) <= 0.0


# ----------------------------------------------------------------------------- (d) negative control
def test_negative_control_wrong_constant_is_caught():
    rng = np.random.default_rng(0)
    chain = nn.Sequential(_linear(rng, 5, 6), nn.ReLU(), _linear(rng, 6, 3)).eval()
    honest = chain_l1_bound(chain).max
    wrong = chain_l1_bound(chain, constants={nn.Linear: 1e-3}).max
    assert wrong == pytest.approx(1e-6) and wrong < honest
    assert _max_ratio_excess(chain, (5,), honest, 1) <= 0.0
    assert _max_ratio_excess(chain, (5,), wrong, 1) > 0.0


def test_negative_control_found_by_hypothesis_search():
    rng = np.random.default_rng(1)
    chain = nn.Sequential(_linear(rng, 4, 5), nn.Tanh(), _linear(rng, 5, 2)).eval()
    wrong = chain_l1_bound(chain, constants={nn.Tanh: 1e-3}).max
    assert wrong < chain_l1_bound(chain).max

    def ratio(pair) -> float:
        x = torch.tensor([pair[0]], dtype=torch.float64)
        d = torch.tensor([pair[1]], dtype=torch.float64)
        if float(d.abs().max()) == 0.0:
            return 0.0
        with torch.no_grad():
            return float((chain(x + d) - chain(x)).abs().max() / d.abs().max())

    vec = st.lists(st.floats(-3, 3), min_size=4, max_size=4)
    pair = find(st.tuples(vec, vec), lambda p: ratio(p) > wrong * (1 + REL_TOL),
                settings=settings(max_examples=2000, database=None, derandomize=True))
    assert ratio(pair) > wrong


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [nn.LayerNorm(3), nn.Softmax(dim=1), nn.MultiheadAttention(3, 1)])
def test_unsupported_module_raises(bad):
    chain = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), bad)
    with pytest.raises(UnsupportedModuleError, match=type(bad).__name__):
        chain_l1_bound(chain)


@pytest.mark.parametrize("chain", [
    nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)),
    nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()),
    nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2)),
], ids=["bn1d", "bn2d", "dropout"])
def test_training_mode_raises_value_error(chain):
    chain.train()
    with pytest.raises(ValueError, match="training mode") as info:
        chain_l1_bound(chain)
    assert not isinstance(info.value, UnsupportedModuleError)
    chain.eval()
    assert chain_l1_bound(chain).certified


def test_batchnorm_without_running_stats_raises():
    chain = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False)).eval()
    with pytest.raises(ValueError, match="track_running_stats"):
        chain_l1_bound(chain)


def test_empty_chain_and_nested_sequential():
    assert chain_l1_bound([]).max == 1.0
    rng = np.random.default_rng(3)
    a, b = _linear(rng, 3, 4), _linear(rng, 4, 2)
    flat = chain_l1_bound(nn.Sequential(a, nn.ReLU(), b)).max
    nested = chain_l1_bound(nn.Sequential(nn.Sequential(a, nn.ReLU()), b)).max
    # a nested Sequential collapses to its own L1 value: sound, never tighter than the flat chain
    assert nested >= flat * (1 - 1e-12)
    assert _max_ratio_excess(nn.Sequential(a, nn.ReLU(), b), (3,), flat, 0) <= 0.0


def test_batchnorm1d_on_3d_input_followed_by_linear_is_sound():
    bn = nn.BatchNorm1d(2).double().eval()
    bn.eps = 0.0
    _set(bn.running_var, [1.0, 1.0])
    _set(bn.weight, [10.0, 0.1])
    lin = nn.Linear(2, 1, bias=False).double()
    _set(lin.weight, [[0.0, 1.0]])
    chain = nn.Sequential(bn, lin)            # input (N, C=2, L=2); Linear acts on L
    x = torch.zeros(1, 2, 2, dtype=torch.float64)
    xp = x.clone()
    xp[0, 0, 1] = 1.0                         # channel 0 (factor 10) at position 1 (weight 1)
    with torch.no_grad():
        observed = float((chain(xp) - chain(x)).abs().max())   # = 10
    assert observed <= chain_l1_bound(chain).max * (1 + REL_TOL)


# ----------------------------------------------------------------------------- (f) shape-aware mode
@given(st.one_of(mlp_chains(), conv_chains()), st.integers(0, 2**31 - 1))
def test_l1_chain_with_input_shape_is_sound_and_no_looser(chain_shape, seed):
    """``input_shape`` keeps the activation shape through convs / pools / BatchNorm / Flatten:
    still a valid ℓ∞ constant on random and gradient-sign pairs, and never above the scalar rule."""
    chain, shape = chain_shape
    shaped = chain_l1_bound(chain, input_shape=shape)
    assert shaped.certified and shaped.method == "L1-chain" and not shaped.path_dependent
    assert _max_ratio_excess(chain, shape, shaped.max, seed) <= 0.0
    assert shaped.max <= chain_l1_bound(chain).max * (1 + 1e-12) + 1e-300


def test_l1_chain_with_input_shape_counts_only_the_pixels_a_kernel_sees():
    # conv 3×3 (all |w| = 1, zero padding 1) → flatten → read one corner output: the corner
    # output sees 4 input pixels, an interior one 9; the head reads only the corner
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    _set(conv.weight, np.ones((1, 1, 3, 3)))
    head = nn.Linear(16, 1, bias=False).double()
    w = np.zeros((1, 16))
    w[0, 0] = 1.0
    _set(head.weight, w)
    chain = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head).eval()
    assert chain_l1_bound(chain, input_shape=(1, 4, 4)).max == pytest.approx(4.0, rel=1e-15)
    assert chain_l1_bound(chain).max == pytest.approx(9.0, rel=1e-15)   # scalar rule: Σ|w| = 9
    # and 4 is attained: move the 4 pixels the corner sees by +1
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[0, 0, :2, :2] = 1.0
    with torch.no_grad():
        assert float((chain(x2) - chain(x)).abs().max()) == pytest.approx(4.0, rel=1e-15)


def test_l1_chain_with_input_shape_flags_an_undersized_constant():
    """Negative control: a user constant that understates the conv breaks soundness, and the
    ratio harness sees it (the shaped path honours ``constants`` like the scalar one)."""
    rng = np.random.default_rng(3)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    _set(conv.weight, rng.normal(size=conv.weight.shape))
    chain = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), _linear(rng, 3 * 5 * 5, 2)).eval()
    wrong = chain_l1_bound(chain, constants={nn.Conv2d: 1e-3}, input_shape=(2, 5, 5)).max
    assert _max_ratio_excess(chain, (2, 5, 5), wrong, 0) > 0.0
    assert _max_ratio_excess(chain, (2, 5, 5), chain_l1_bound(chain, input_shape=(2, 5, 5)).max, 0) <= 0


def test_l1_chain_input_shape_validation():
    with pytest.raises(ValueError, match="input_shape"):
        chain_l1_bound(nn.Sequential(nn.ReLU()), input_shape=(0, 3))
    with pytest.raises(ValueError, match="input_shape"):
        chain_l1_bound(nn.Sequential(nn.ReLU()), input_shape=())
