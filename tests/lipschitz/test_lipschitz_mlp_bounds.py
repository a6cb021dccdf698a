"""Property tests of the rigorous Lipschitz bounds L0–L3 (THEORY §1.6) on RandNet MLPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis.errors import NoSuchExample

from certkit._registry import registered_results
from certkit.lipschitz import (
    lipschitz_bound,
    lipschitz_L0,
    lipschitz_L1,
    lipschitz_L2,
    lipschitz_L3,
    path_pieces,
)
from certkit.mlp import MLP
from certkit.results import holds_with_tolerance
from certkit.testing import certification_problems, check_lipschitz_sound

RTOL = 1e-9
ATOL = 1e-10
#: Pieces shorter than this are not verified by finite differences (the difference of two
#: forward passes has absolute error ~1e-16·|logits|, far above slope·length there).
MIN_PIECE = 1e-6


def _all_bounds(p):
    return (
        lipschitz_L0(p.mlp, p.k),
        lipschitz_L1(p.mlp, p.k),
        lipschitz_L2(p.mlp, p.k, p.S, p.R, p.x),
        lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x),
    )


def _per_sample(bound, n):
    vals = np.asarray(bound.values)
    return np.full(n, vals[0]) if vals.size == 1 else vals


def _leq(a, b):
    return a <= b + ATOL + RTOL * max(abs(a), abs(b))


# ----------------------------------------------------------------------------- metadata
@given(certification_problems())
@settings(deadline=None)
def test_metadata_and_hierarchy_L3_le_L2_le_L1_le_L0(p):
    L0, L1, L2, L3 = _all_bounds(p)
    n = p.x.shape[0]
    for b, name, local in ((L0, "L0", False), (L1, "L1", False), (L2, "L2", True),
                           (L3, "L3", True)):
        assert b.certified is True
        assert b.method == name
        assert b.path_dependent is local
    assert len(L0) == len(L1) == 1
    assert len(L2) == len(L3) == n
    l0, l1 = L0.values[0], L1.values[0]
    assert _leq(l1, l0), (l1, l0)
    for s in range(n):
        assert _leq(L2.values[s], l1), (s, L2.values[s], l1)
        assert _leq(L3.values[s], L2.values[s]), (s, L3.values[s], L2.values[s])


# ----------------------------------------------------------------------------- soundness
@given(certification_problems())
@settings(deadline=None)
def test_every_level_satisfies_the_logit_path_inequality(p):
    """M-Lemma 5.1(a): ‖ψ2(A_θ v) − ψ2(A v)‖_∞ ≤ (1−θ)·L_s·‖R v‖_∞ for L0, L1, L2, L3."""
    v = p.v
    z_A = p.mlp.psi2(p.k, v @ p.A.T)
    d = (v @ p.R.T).abs().amax(dim=1).numpy()
    n = v.shape[0]
    thetas = sorted({0.0, p.theta, 0.5, 0.999})
    for bound in _all_bounds(p):
        Ls = _per_sample(bound, n)
        for th in thetas:
            z_t = p.mlp.psi2(p.k, v @ p.A_theta(th).T)
            lhs = (z_t - z_A).abs().amax(dim=1).numpy()
            scale = float(torch.maximum(z_t.abs().max(), z_A.abs().max()))
            for s in range(n):
                rhs = (1.0 - th) * Ls[s] * d[s]
                assert holds_with_tolerance(lhs[s], rhs, scale=scale), (
                    bound.method, th, s, lhs[s], rhs)


@given(certification_problems(max_samples=4))
@settings(deadline=None)
def test_dense_secant_grid_never_exceeds_L3(p):
    L3 = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
    extra = np.concatenate([pc.breakpoints for pc in path_pieces(p.mlp, p.k, p.S, p.R, p.x)])
    rep = check_lipschitz_sound(p.mlp, p.k, p.S, p.R, p.x, L3, n_grid=129, extra_thetas=extra)
    assert rep.ok, rep.summary()


# ----------------------------------------------------------------------------- exactness of L3
def _forward(p, thetas):
    v = p.v
    return np.stack([p.mlp.psi2(p.k, v @ p.A_theta(t).T).numpy() for t in thetas], axis=1)


@given(certification_problems(max_samples=4))
@settings(deadline=None)
def test_L3_is_exact_piece_slopes_match_forward_passes(p):
    """Each reported piece is affine (checked at interior points) with the reported slope, and
    L3 equals the max secant over consecutive breakpoints."""
    pieces = path_pieces(p.mlp, p.k, p.S, p.R, p.x)
    L3 = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
    rng = np.random.default_rng(0)
    for s, pc in enumerate(pieces):
        bp = pc.breakpoints
        assert bp[0] == 0.0 and bp[-1] == 1.0 and np.all(np.diff(bp) > 0)
        assert pc.slopes.shape == (bp.size - 1, p.mlp.widths[-1])
        if pc.d_norm == 0.0:
            assert L3.values[s] == 0.0
            continue
        assert L3.values[s] == pytest.approx(np.abs(pc.slopes).max() / pc.d_norm, rel=1e-12)
        # evaluate at both ends and two interior points of every piece
        u = rng.uniform(0.2, 0.8, size=(bp.size - 1, 2))
        inner = bp[:-1, None] + u * np.diff(bp)[:, None]
        pts = np.concatenate([bp, inner.ravel()])
        f = _forward(p, pts)[s]  # (len(pts), K)
        fb, fi = f[: bp.size], f[bp.size :].reshape(bp.size - 1, 2, -1)
        scale = np.abs(f).max() + 1.0
        max_secant = 0.0
        max_slope_long = 0.0
        for i in range(bp.size - 1):
            length = bp[i + 1] - bp[i]
            # affine on the piece: interior values lie on the chord with the reported slope
            pred = fb[i][None, :] + (inner[i] - bp[i])[:, None] * pc.slopes[i][None, :]
            assert np.abs(fi[i] - pred).max() <= 1e-9 * scale, (s, i)
            if length >= MIN_PIECE:
                sec = np.abs(fb[i + 1] - fb[i]).max() / (length * pc.d_norm)
                max_secant = max(max_secant, sec)
                max_slope_long = max(max_slope_long, np.abs(pc.slopes[i]).max() / pc.d_norm)
                err = 1e-9 * scale / (length * pc.d_norm)
                assert abs(sec - np.abs(pc.slopes[i]).max() / pc.d_norm) <= err + 1e-9 * sec
        # L3 is attained on a piece long enough to be measured: it equals the max secant
        i_max = int(np.argmax(np.abs(pc.slopes).max(axis=1)))
        if bp[i_max + 1] - bp[i_max] >= MIN_PIECE:
            err = 1e-9 * scale / (MIN_PIECE * pc.d_norm)
            assert max_secant == pytest.approx(L3.values[s], rel=1e-9, abs=err)
            assert max_slope_long == pytest.approx(L3.values[s], rel=1e-12)


def test_L3_hand_example_relu():
    # ψ2(u) = W1 relu(u + b0) + b1 with scalar target; f(θ) = 2·relu(θ − 0.5) − 1·relu(...)
    mlp = MLP(
        (torch.tensor([[1.0]]), torch.tensor([[2.0], [-1.0]])),
        (torch.tensor([-0.5]), torch.tensor([0.0, 0.0])),
        "relu",
        False,
    )
    S, R, x = torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1)
    pc = path_pieces(mlp, 0, S, R, x)[0]
    np.testing.assert_allclose(pc.breakpoints, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(pc.slopes, [[0.0, 0.0], [2.0, -1.0]])
    assert lipschitz_L3(mlp, 0, S, R, x).values == (2.0,)
    assert lipschitz_L2(mlp, 0, S, R, x).values == (2.0,)
    assert lipschitz_L1(mlp, 0).values == (2.0,)
    assert lipschitz_L0(mlp, 0).values == (2.0,)
    # a dead segment: relu(θ − 2) ≡ 0 on [0, 1] → L3 = L2 = 0
    mlp2 = MLP(mlp.weights, (torch.tensor([-2.0]), torch.tensor([0.0, 0.0])), "relu", False)
    assert lipschitz_L3(mlp2, 0, S, R, x).values == (0.0,)
    assert lipschitz_L2(mlp2, 0, S, R, x).values == (0.0,)


def test_L3_hand_example_abs_cancellation():
    # f(θ) = |θ − 0.5| + |θ − 0.5|·(−1) ≡ 0 on the last layer: slopes cancel exactly
    mlp = MLP(
        (torch.tensor([[1.0], [1.0]]), torch.tensor([[1.0, -1.0]])),
        (torch.tensor([-0.5, -0.5]), torch.tensor([0.0])),
        "abs",
        False,
    )
    S, R, x = torch.zeros(2, 1), torch.ones(2, 1), torch.ones(1, 1)
    assert lipschitz_L3(mlp, 0, S, R, x).values == (0.0,)
    assert lipschitz_L2(mlp, 0, S, R, x).values == (2.0,)


def test_last_layer_target():
    W = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    b = torch.tensor([0.1, -0.1])
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    S, R = W * torch.tensor([[1.0, 0.0], [0.0, 1.0]]), W * torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mlp = MLP((W,), (b,), "relu", False)
    assert lipschitz_L0(mlp, 0).values == (1.0,)
    assert lipschitz_L1(mlp, 0).values == (1.0,)
    assert lipschitz_L3(mlp, 0, S, R, x).values == (1.0, 1.0)


def test_zero_removed_component_gives_zero_L3():
    mlp = MLP((torch.ones(3, 2), torch.ones(2, 3)), (torch.zeros(3), torch.zeros(2)))
    x = torch.randn(4, 2, dtype=torch.float64)
    L3 = lipschitz_L3(mlp, 0, mlp.weights[0], torch.zeros(3, 2), x)
    assert L3.values == (0.0,) * 4


# ----------------------------------------------------------------------------- negative control
def _too_small_bound_is_caught(p) -> bool:
    L3 = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
    if max(L3.values) <= 1e-6:
        return False
    half = [0.5 * v for v in L3.values]
    return not check_lipschitz_sound(p.mlp, p.k, p.S, p.R, p.x, half, n_grid=33).ok


def test_negative_control_half_L3_is_refuted():
    """With L = 0.5·L3 hypothesis must find a violation of the logit path inequality."""
    p = find(certification_problems(max_samples=3), _too_small_bound_is_caught,
             settings=settings(max_examples=500, database=None, derandomize=True))
    assert max(lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x).values) > 0


def test_negative_control_zero_bound_on_trivial_path_is_not_refuted():
    # sanity of the control itself: with R = 0 nothing can be violated
    with pytest.raises(NoSuchExample):
        find(certification_problems(max_samples=2, density=1.0),
             lambda p: not check_lipschitz_sound(p.mlp, p.k, p.S, p.R, p.x, 0.0, n_grid=9).ok,
             settings=settings(max_examples=50, database=None))


# ----------------------------------------------------------------------------- API
def test_dispatcher_matches_direct_calls():
    mlp = MLP((torch.eye(2), torch.tensor([[1.0, -2.0], [0.5, 3.0]])),
              (torch.tensor([0.1, -0.3]), torch.zeros(2)), "abs", True)
    S, R = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.5], [-1.0, 0.0]])

    class P:
        pass

    p = P()
    p.mlp, p.k, p.S, p.R, p.x = mlp, 0, S, R, torch.tensor([[0.3, -0.2], [1.0, 1.0]])
    for name, fn in (("L0", lipschitz_L0), ("L1", lipschitz_L1)):
        assert lipschitz_bound(p.mlp, p.k, method=name) == fn(p.mlp, p.k)
    for name, fn in (("L2", lipschitz_L2), ("L3", lipschitz_L3)):
        got = lipschitz_bound(p.mlp, p.k, method=name, S=p.S, R=p.R, x=p.x)
        assert got == fn(p.mlp, p.k, p.S, p.R, p.x)


def test_registered():
    reg = registered_results()
    for rid in ("THEORY-1.6-L0", "THEORY-1.6-L1", "THEORY-1.6-L2", "THEORY-1.6-L3"):
        assert rid in reg and reg[rid][0].kind == "D"


def _small():
    mlp = MLP((torch.ones(3, 2), torch.ones(2, 3)), (torch.zeros(3), torch.zeros(2)))
    return mlp, torch.ones(3, 2), torch.zeros(3, 2), torch.ones(4, 2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, S, R, x: lipschitz_L0(m, 2), "k == 2"),
        (lambda m, S, R, x: lipschitz_L1(m, -1), "k == -1"),
        (lambda m, S, R, x: lipschitz_L2(m, 0, S[:2], R, x), "S and R"),
        (lambda m, S, R, x: lipschitz_L2(m, 0, S.T, R.T, x), "S must have the shape"),
        (lambda m, S, R, x: lipschitz_L3(m, 0, S, R, x[:, :1]), "x must have shape"),
        (lambda m, S, R, x: lipschitz_L3(m, 0, S * float("nan"), R, x), "S contains NaN"),
        (lambda m, S, R, x: lipschitz_L3(m, 0, S, R, x, max_pieces=0), "max_pieces"),
        (lambda m, S, R, x: lipschitz_bound(m, 0, method="L2"), "S, R and x are required"),
        (lambda m, S, R, x: lipschitz_bound(m, 0, method="L9"), "method == 'L9'"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    mlp, S, R, x = _small()
    with pytest.raises(ValueError, match=match):
        call(mlp, S, R, x)


def test_wrong_types_raise_type_error():
    mlp, S, R, x = _small()
    with pytest.raises(TypeError, match="mlp"):
        lipschitz_L0(object(), 0)
    with pytest.raises(TypeError, match="k must be an int"):
        lipschitz_L1(mlp, 0.0)


def test_max_pieces_cap_raises_runtime_error():
    mlp = MLP((torch.eye(3), torch.ones(2, 3)), (torch.tensor([-0.2, -0.5, -0.7]), torch.zeros(2)))
    S, R, x = torch.zeros(3, 3), torch.eye(3), torch.ones(1, 3)
    assert len(path_pieces(mlp, 0, S, R, x)[0].breakpoints) == 5
    with pytest.raises(RuntimeError, match="max_pieces"):
        lipschitz_L3(mlp, 0, S, R, x, max_pieces=2)
