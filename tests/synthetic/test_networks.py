"""synthetic.networks: S+R generators, outer-layer scaling (Trap T11), data sets, train_l2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from certkit.mlp import MLP
from synthetic.networks import (
    LAWS,
    TrainResult,
    gaussian_mixture,
    haar_orthonormal,
    outer_scale_invariants,
    sr_layer,
    sr_mlp,
    teacher_student,
    train_l2,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("shape", [(200, 100), (100, 300)])
def test_sr_layer_shapes_and_entry_variance(law, shape):
    rows, cols = shape
    g = 0.7
    S, R = sr_layer(rows, cols, rank=3, spikes=[3.0, 2.0, 1.0], g=g, law=law, seed=1)
    assert S.shape == R.shape == shape and S.dtype == R.dtype == torch.float64
    # entry variance g/rows (Trap T1: N = rows) within Monte Carlo error (variance of the
    # sample variance ≈ (m4 − σ⁴)/n ≤ 2σ⁴/n for these laws)
    var = g / rows
    n = rows * cols
    assert abs(float(R.var()) - var) <= 5 * math.sqrt(2.0 / n) * var
    assert abs(float(R.mean())) <= 5 * math.sqrt(var / n)
    s = torch.linalg.svdvals(S)
    np.testing.assert_allclose(s[:3].numpy(), [3.0, 2.0, 1.0], atol=1e-12)
    assert float(s[3:].abs().max()) < 1e-12


def test_sr_layer_laws_have_their_support():
    _, R = sr_layer(50, 40, rank=0, g=2.0, law="rademacher", seed=0)
    np.testing.assert_allclose(R.abs().unique().numpy(), [math.sqrt(2.0 / 50)])
    _, R = sr_layer(50, 40, rank=0, g=2.0, law="uniform", seed=0)
    assert float(R.abs().max()) <= math.sqrt(3 * 2.0 / 50)


def test_sr_layer_default_spikes_supercritical_and_haar_vectors():
    S, _ = sr_layer(60, 60, rank=2, g=0.25, seed=3)
    np.testing.assert_allclose(torch.linalg.svdvals(S)[:2].numpy(), [1.5, 1.0], atol=1e-12)
    Q = haar_orthonormal(30, 4, seed=0)
    np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-12)


def test_sr_layer_determinism():
    a = sr_layer(20, 10, rank=2, g=1.0, seed=5)
    b = sr_layer(20, 10, rank=2, g=1.0, seed=5)
    c = sr_layer(20, 10, rank=2, g=1.0, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(rows=0, cols=3, rank=0, g=1.0), "rows"),
        (dict(rows=3, cols=3, rank=4, g=1.0), "rank"),
        (dict(rows=3, cols=3, rank=1, g=-1.0), "g"),
        (dict(rows=3, cols=3, rank=1, g=1.0, law="cauchy"), "law"),
        (dict(rows=3, cols=3, rank=2, g=1.0, spikes=[1.0]), "spikes"),
        (dict(rows=3, cols=3, rank=1, g=1.0, spikes=[-1.0]), "spikes"),
    ],
)
def test_sr_layer_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sr_layer(**kwargs)


def test_sr_mlp_structure():
    mlp, S, R = sr_mlp((5, 16, 16, 16, 3), target=(1, 2), g=0.5, rank=2, seed=0,
                       final_activation=True, activation="abs")
    assert isinstance(mlp, MLP) and mlp.widths == (5, 16, 16, 16, 3)
    assert mlp.final_activation and mlp.activation == "abs"
    assert len(S) == len(R) == 2
    for k, (Sk, Rk) in zip((1, 2), zip(S, R, strict=True), strict=True):
        assert torch.equal(mlp.weights[k], Sk + Rk)
    assert all(float(b.abs().max()) == 0 for b in mlp.biases)


def test_outer_scale_invariants_bounded_vs_fan_in_growing():
    x, _ = gaussian_mixture(30, 8, 3, seed=0)
    norm, fan = [], []
    Ns = (32, 128, 512)
    for N in Ns:
        mlp, _, _ = sr_mlp((8, N, N, 3), g=1.0, seed=N)
        norm.append(outer_scale_invariants(mlp, x))
        mlp, _, _ = sr_mlp((8, N, N, 3), g=1.0, seed=N, outer_scale="fan_in")
        fan.append(outer_scale_invariants(mlp, x))
    x_max = float(x.norm(dim=1).max())
    for inv in norm:  # E-Assumption 3.1 holds deterministically
        assert inv["w3_inf"] == pytest.approx(1.0, rel=1e-12)
        assert inv["w1s_lin_max"] <= x_max * (1 + 1e-12)
        assert inv["w1s_max"] <= inv["w1s_lin_max"] * (1 + 1e-12)
    # fan-in control (violates the assumption): both grow like sqrt(N)
    w3 = [inv["w3_inf"] for inv in fan]
    w1 = [inv["w1s_lin_max"] for inv in fan]
    assert w3[-1] > 3 * w3[0] and w1[-1] > 3 * w1[0]
    a = [i["w3_inf"] * i["w1s_lin_max"] * math.sqrt(math.log(2 * N) / N) for i, N in zip(fan, Ns,
                                                                                            strict=True)]
    assert a[-1] > a[0]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(widths=(4,)), "widths"),
        (dict(widths=(4, 8, 8, 2), target=3), "target"),
        (dict(widths=(4, 8, 8, 2), target=(1, 1)), "target"),
        (dict(widths=(4, 8, 8, 2), outer_scale="xavier"), "outer_scale"),
        (dict(widths=(4, 8, 8, 2), activation="tanh"), "activation"),
        (dict(widths=(4, 0, 8, 2)), "widths"),
    ],
)
def test_sr_mlp_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sr_mlp(**kwargs)


def test_data_sets():
    x, y = gaussian_mixture(31, 6, 4, seed=1)
    assert x.shape == (31, 6) and y.shape == (31,) and y.dtype == torch.int64
    assert np.bincount(y.numpy()).tolist() == [8, 8, 8, 7]
    x2, y2 = gaussian_mixture(31, 6, 4, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    teacher, _, _ = sr_mlp((6, 20, 20, 3), g=0.0, seed=2)
    xs, ys = teacher_student(50, teacher, seed=3)
    assert xs.shape == (50, 6) and torch.equal(ys, teacher(xs).argmax(dim=1))
    with pytest.raises(ValueError, match="K"):
        gaussian_mixture(10, 3, 1)
    with pytest.raises(TypeError, match="teacher"):
        teacher_student(10, "net")


def _small_problem(N=24, seed=0):
    mlp, S, R = sr_mlp((6, N, N, 3), g=1.0, rank=2, seed=seed)
    x, y = gaussian_mixture(12, 6, 3, seed=seed + 100)
    return mlp, S, R, x, y


def test_train_l2_reduces_objective_and_reports_eps():
    mlp, _, _, x, y = _small_problem()
    res = train_l2(mlp, x, y, lam=0.05, steps=80, lr=1.0, trainable=(1,), record_every=5)
    assert isinstance(res, TrainResult)
    h = res.history
    assert h["loss"][-1] < h["loss"][0]
    assert res.steps == 80 and h["step"][-1] == 80
    assert res.grad_norm == h["grad_norm"][-1] < h["grad_norm"][0]
    assert res.shrink == pytest.approx(0.9**80)
    # frozen layers are untouched, the target moved; R-part collapses
    assert torch.equal(res.mlp.weights[0], mlp.weights[0])
    assert not torch.equal(res.mlp.weights[1], mlp.weights[1])
    assert h["r_part"][-1] < 0.1 * h["r_part"][0]
    # THEORY §2.4.4 [D]: tail energy beyond |T| is bounded by (‖∇L‖/(2λ))² at every point
    for tail, bound in zip(h["tail_energy"], h["tail_bound"], strict=True):
        assert tail <= bound + 1e-10 + 1e-9 * bound


def test_train_l2_all_layers_and_tolerance_stop():
    mlp, _, _, x, y = _small_problem(N=12)
    res = train_l2(mlp, x, y, lam=0.1, steps=500, lr=0.5, tol=10.0)
    assert res.steps == 0 and res.converged  # already below a loose tolerance
    res = train_l2(mlp, x, y, lam=0.1, steps=20, lr=0.5)
    assert all(not torch.equal(a, b) for a, b in zip(res.mlp.weights, mlp.weights, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(lam=0.0), "lam"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=20.0), "lr"),
        (dict(steps=-1), "steps"),
        (dict(trainable=(5,)), "trainable"),
        (dict(monitor=7), "monitor"),
    ],
)
def test_train_l2_bad_input(kwargs, name):
    mlp, _, _, x, y = _small_problem(N=8)
    base = dict(lam=0.05, steps=1, lr=0.5)
    base.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train_l2(mlp, x, y, **base)


def test_train_l2_bad_data():
    mlp, _, _, x, y = _small_problem(N=8)
    with pytest.raises(ValueError, match="labels"):
        train_l2(mlp, x, y + 5, lam=0.1, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="x"):
        train_l2(mlp, x[:, :3], y, lam=0.1, steps=1, lr=0.1)
