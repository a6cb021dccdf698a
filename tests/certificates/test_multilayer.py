"""Property suites for the multi-layer [D] results: M-Thm 5.8, E-Cor 1.3, M-Thm 5.9.

Budgets are computed in the intermediate networks (Trap T7) with L0, which is valid on any path.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from certkit import MLP, compute_budget, perturbation_sizes
from certkit.certificates import (
    MaskStep,
    multilayer_certificate,
    multilayer_margin_stability,
    multilayer_stationarity_certificate,
)
from certkit.classification import mean_ce
from certkit.lipschitz import lipschitz_L0
from certkit.testing import assert_certificate_holds
from certkit.testing.strategies import mlps

from ._helpers import elastic_penalty, loss_scale

log_lams = st.one_of(st.just(0.0), st.floats(math.log(1e-4), math.log(10.0)).map(math.exp))


@st.composite
def schedules(draw):
    """A 2–4 layer MLP, data, per-layer (λ1, λ2), and an ordered set of mask steps."""
    mlp = draw(mlps(min_depth=2, max_depth=4, max_width=10))
    g = np.random.default_rng(draw(st.integers(0, 2**31)))
    n = draw(st.integers(1, 10))
    x = torch.as_tensor(g.normal(size=(n, mlp.widths[0])))
    labels = torch.as_tensor(g.integers(0, mlp.widths[-1], size=n))
    layers = draw(st.lists(st.integers(0, mlp.depth - 1), min_size=1, max_size=mlp.depth,
                           unique=True))
    keep = {j: torch.as_tensor(g.random(mlp.weights[j].shape) < draw(st.sampled_from(
        [0.0, 0.3, 0.7, 1.0]))) for j in layers}
    lam = {j: (draw(log_lams), draw(log_lams)) for j in range(mlp.depth)}
    return mlp, x, labels, layers, keep, lam


def J(mlp: MLP, x, labels, lam) -> float:
    return mean_ce(mlp(x), labels) + sum(
        elastic_penalty(W, *lam[j]) for j, W in enumerate(mlp.weights))


@given(schedules())
def test_m_thm_5_8_and_e_cor_1_3_sequential(sched):
    mlp0, x, labels, layers, keep, lam = sched
    cur, steps, etas = mlp0, [], []
    for j in layers:
        W = cur.weights[j]
        S = torch.where(keep[j], W, torch.zeros_like(W))
        R = W - S
        v = cur.layer_input(j, x)             # inputs in the intermediate network α^(j−1)
        L = lipschitz_L0(cur, j)              # downstream weights of α^(j−1)
        steps.append(MaskStep(R, compute_budget(R, v, L), *lam[j], S=S, layer=str(j)))
        etas.append(compute_budget(R, v, L))
        cur = cur.with_weight(j, S)
    observed = J(cur, x, labels, lam) - J(mlp0, x, labels, lam)
    scale = loss_scale(mlp0(x), cur(x)) + J(mlp0, x, labels, lam)
    cert = multilayer_certificate(steps, observed=observed, scale=scale)
    assert cert.certified
    assert_certificate_holds(cert)
    ms = multilayer_margin_stability(mlp0(x), etas, labels, logits_after=cur(x))
    assert ms.certified and ms.holds, ms.to_dict()
    ce_change = abs(mean_ce(cur(x), labels) - mean_ce(mlp0(x), labels))
    assert ce_change <= ms.ce_change_bound + 1e-10 + 1e-9 * scale
    # the final network does not depend on the order (distinct layers); the bound may
    rev = mlp0
    for j in reversed(layers):
        rev = rev.with_weight(j, torch.where(keep[j], mlp0.weights[j], 0.0))
    assert torch.equal(rev(x), cur(x))


@given(schedules(), st.sampled_from([0.05, 0.3, 0.7, 1.0]))
def test_m_thm_5_9_multilayer_stationarity_output_first(sched, h):
    """Output-first order, original inputs and L0 with original downstream weights (valid for
    every fractional mask because |S + (1−h)R| ≤ |A|), per-h slack ε(h)."""
    mlp0, x, labels, layers, keep, lam = sched
    order = sorted(layers, reverse=True)
    steps, frac = [], mlp0
    for j in order:
        W = mlp0.weights[j]
        S = torch.where(keep[j], W, torch.zeros_like(W))
        R = W - S
        steps.append(MaskStep(R, compute_budget(R, mlp0.layer_input(j, x),
                                                lipschitz_L0(mlp0, j)), *lam[j], S=S))
        frac = frac.with_weight(j, S + (1 - h) * R)
    J0, Jh = J(mlp0, x, labels, lam), J(frac, x, labels, lam)
    eps = max(0.0, (J0 - Jh) / h)
    tol = 1e-9 * (loss_scale(mlp0(x), frac(x)) + abs(J0)) / h
    cert = multilayer_stationarity_certificate(steps, eps=eps, h=h)
    assert cert.certified
    assert cert.lhs <= cert.rhs + 1e-10 + tol, cert.to_dict()


def test_e_cor_1_3_uses_the_sum_of_step_bounds():
    z = torch.tensor([[2.0, 0.0], [0.0, 0.3]], dtype=torch.float64)
    ms = multilayer_margin_stability(z, [torch.tensor([0.2, 0.1], dtype=torch.float64),
                                      torch.tensor([0.3, 0.1], dtype=torch.float64)],
                                     torch.tensor([0, 1]))
    assert torch.allclose(ms.eta, torch.tensor([0.5, 0.2], dtype=torch.float64))
    assert ms.at_risk.tolist() == [False, True] and ms.acc_change_bound == 0.5
    assert math.isclose(ms.ce_change_bound, 0.7)
    _ = perturbation_sizes  # the natural certified η_{j,s} (see test above)
