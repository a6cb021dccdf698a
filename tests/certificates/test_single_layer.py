"""Property suites for the single-layer [D] results of THEORY §2.2 (hypothesis, rigorous L_s).

Rows of THEORY §6 covered here: M-Lemma 5.1, M-Cor 5.2, M-Thm 5.3, M-Thm 5.4, M-Thm 5.5,
M-Cor 5.6, M-Thm 5.7, E-Cor 1.1, E-Cor 1.2, M-Thm 4.7 ([D] skeleton). Each property must find
no counterexample; the negative controls at the end prove the checks can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from certkit import compute_budget
from certkit.certificates import (
    ce_path_bound,
    elastic_net_certificate,
    frobenius_certificate,
    frobenius_stationarity_certificate,
    margin_stability,
    one_sided_derivative,
    prune_restore_certificate,
    restoration_criterion,
    stationarity_certificate,
    stationarity_slack,
    weighted_elastic_net_certificate,
    weighted_stationarity_certificate,
)
from certkit.lipschitz import lipschitz_L0, lipschitz_L3
from certkit.testing import assert_certificate_holds
from certkit.testing.strategies import certification_problems, masks

from ._helpers import (
    KINK_TOL,
    ce_grad,
    elastic_penalty,
    lipschitz_levels,
    loss_scale,
    min_abs_preactivation,
)

lams = st.one_of(st.just(0.0), st.floats(1e-4, 10.0).map(lambda u: float(u)))
log_lams = st.one_of(st.just(0.0), st.floats(math.log(1e-4), math.log(10.0)).map(math.exp))


@given(certification_problems())
def test_m_lemma_5_1_ce_path_bound_every_level(p):
    """M-Lemma 5.1 with L0, L1, L2 and L3, plus steps (a) and (b)."""
    A, At = p.A, p.A_theta()
    z, zt = p.logits(A), p.logits(At)
    observed = abs(p.ce(At) - p.ce(A))
    for name, L in lipschitz_levels(p.mlp, p.k, p.S, p.R, p.x).items():
        B = compute_budget(p.R, p.v, L)
        cert = ce_path_bound(B, p.theta, observed=observed, scale=loss_scale(z, zt))
        assert cert.certified and cert.lipschitz_method == name
        assert_certificate_holds(cert)
        ms = margin_stability(z, B, p.labels, logits_after=zt, theta=p.theta)
        assert ms.holds, ms.to_dict()  # (a) logit bound, (b) per-sample CE, M-Cor 5.2


@given(certification_problems())
def test_m_lemma_5_1_derivative_form(p):
    """|⟨∇_A L_CE(A), R⟩_F| ≤ B_T(R) where θ ↦ L_CE(A_θ) is differentiable at θ = 1."""
    assume(min_abs_preactivation(p.mlp, p.k, p.A, p.x) > KINK_TOL)
    G = ce_grad(p.mlp, p.k, p.A, p.x, p.labels)
    B = compute_budget(p.R, p.v, lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)).value
    lhs = abs(float((G * p.R).sum()))
    assert lhs <= B + 1e-10 + 1e-9 * max(lhs, B, loss_scale(p.logits()))


@given(certification_problems())
def test_m_cor_5_2_margin_stability(p):
    """Flips ⊆ at-risk set, |ΔΔ_true| ≤ 2η_s, and the accuracy-change bound."""
    L = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
    B = compute_budget(p.R, p.v, L)
    ms = margin_stability(p.logits(), B, p.labels, logits_after=p.logits(p.A_theta()),
                          theta=p.theta)
    assert ms.certified and ms.holds, ms.to_dict()
    assert bool((ms.flips <= ms.at_risk).all()) and bool((ms.pred_flips <= ms.pred_at_risk).all())
    assert_certificate_holds(ms.certificate())


@given(certification_problems(), st.data(), log_lams)
def test_m_thm_5_3_frobenius_additive(p, data, lam2):
    """Dense, overlapping S and R (an additive decomposition, e.g. fine-tuning drift)."""
    A = p.A
    g = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    R = torch.as_tensor(g.normal(size=A.shape) * data.draw(st.sampled_from([1e-3, 0.1, 1.0])))
    S = A - R
    th = p.theta
    At = S + th * R
    # exact Frobenius path identity used by the proof
    lhs_id = float((At * At).sum() - (A * A).sum())
    rhs_id = -(1 - th**2) * float((R * R).sum()) - 2 * (1 - th) * float((S * R).sum())
    assert math.isclose(lhs_id, rhs_id, rel_tol=1e-9, abs_tol=1e-9 * (1 + float((A * A).sum())))
    for L in (lipschitz_L0(p.mlp, p.k), lipschitz_L3(p.mlp, p.k, S, R, p.x)):
        B = compute_budget(R, p.v, L)
        observed = p.ce(At) + lam2 * float((At * At).sum()) - p.ce(A) - lam2 * float((A * A).sum())
        scale = loss_scale(p.logits(A), p.logits(At)) + lam2 * float((A * A).sum() + (S * S).sum())
        assert_certificate_holds(
            frobenius_certificate(S, R, B, lam2, theta=th, observed=observed, scale=scale))
        eta = abs(float((S * R).sum())) * 1.5
        assert_certificate_holds(frobenius_certificate(S, R, B, lam2, theta=th, cross_bound=eta,
                                                       observed=observed, scale=scale))


@given(certification_problems(), log_lams, log_lams)
def test_m_thm_5_4_elastic_net_mask(p, lam1, lam2):
    A, At = p.A, p.A_theta()
    observed = p.ce(At) + elastic_penalty(At, lam1, lam2) - p.ce(A) - elastic_penalty(A, lam1, lam2)
    scale = loss_scale(p.logits(A), p.logits(At)) + elastic_penalty(A, lam1, lam2)
    for L in lipschitz_levels(p.mlp, p.k, p.S, p.R, p.x).values():
        B = compute_budget(p.R, p.v, L)
        cert = elastic_net_certificate(p.R, B, lam1, lam2, S=p.S, theta=p.theta,
                                       observed=observed, scale=scale)
        assert cert.certified
        assert_certificate_holds(cert)
        # E-Cor 1.1 with constant weights reproduces M-Thm 5.4 exactly
        w = weighted_elastic_net_certificate(p.R, B, lam1, lam2, S=p.S, theta=p.theta,
                                             observed=observed, scale=scale)
        assert (w.lhs, w.rhs) == (cert.lhs, cert.rhs)


@given(certification_problems(), st.data())
def test_e_cor_1_1_weighted_mask(p, data):
    g = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    G1 = torch.as_tensor(g.exponential(size=p.A.shape) * (g.random(p.A.shape) < 0.7))
    G2 = torch.as_tensor(g.exponential(size=p.A.shape) * (g.random(p.A.shape) < 0.7))

    def J(W):
        return p.ce(W) + float((G2 * W * W).sum() + (G1 * W.abs()).sum())

    A, At = p.A, p.A_theta()
    B = compute_budget(p.R, p.v, lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x))
    scale = loss_scale(p.logits(A), p.logits(At)) + abs(J(A))
    assert_certificate_holds(weighted_elastic_net_certificate(
        p.R, B, G1, G2, S=p.S, theta=p.theta, observed=J(At) - J(A), scale=scale))


@given(certification_problems(), st.data(), log_lams, log_lams)
def test_m_thm_5_5_prune_restore_and_m_cor_5_6(p, data, lam1, lam2):
    """Random 3-way partition A = S + Q + P; path S + Q + θP."""
    M = data.draw(masks(tuple(p.R.shape)))
    Q = torch.where(M, p.R, torch.zeros_like(p.R))
    P = p.R - Q
    SQ = p.S + Q
    A, At = p.A, SQ + p.theta * P
    J = lambda W: p.ce(W) + elastic_penalty(W, lam1, lam2)  # noqa: E731
    scale = loss_scale(p.logits(A), p.logits(At)) + elastic_penalty(A, lam1, lam2)
    B_P = compute_budget(P, p.v, lipschitz_L3(p.mlp, p.k, SQ, P, p.x))
    assert_certificate_holds(prune_restore_certificate(
        p.S, Q, P, B_P, lam1, lam2, A=A, theta=p.theta, observed=J(At) - J(A), scale=scale))
    # M-Cor 5.6: the criterion is equivalent to comparing the two upper bounds
    B_R = compute_budget(p.R, p.v, lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x))
    crit = restoration_criterion(Q, P, B_R, B_P, lam1, lam2)
    ub_all, ub_res = crit.details["UB_all"], crit.details["UB_res"]
    if abs(ub_all - ub_res) > 1e-9 * (1 + abs(ub_all)):
        assert crit.holds == (ub_res < ub_all)


@given(certification_problems(theta=st.floats(0.0, 0.999)), log_lams, log_lams)
def test_m_thm_5_7_stationarity_per_theta_slack(p, lam1, lam2):
    """General form with the per-θ slack ε(θ) = max(0, (J(A) − J(A_θ))/(1−θ))."""
    J = lambda W: p.ce(W) + elastic_penalty(W, lam1, lam2)  # noqa: E731
    eps = max(0.0, (J(p.A) - J(p.A_theta())) / (1 - p.theta))
    B = compute_budget(p.R, p.v, lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x))
    cert = stationarity_certificate(p.R, B, lam1, lam2, eps=eps, theta=p.theta, S=p.S)
    tol_scale = loss_scale(p.logits(), p.logits(p.A_theta())) / (1 - p.theta)
    assert cert.lhs <= cert.rhs + 1e-10 + 1e-9 * max(cert.lhs, cert.rhs, tol_scale)
    w = weighted_stationarity_certificate(p.R, B, lam1, lam2, eps=eps, theta=p.theta, S=p.S)
    assert (w.lhs, w.rhs) == (cert.lhs, cert.rhs)


@given(certification_problems(), log_lams, log_lams)
def test_m_thm_5_7_stationarity_derivative_form(p, lam1, lam2):
    """ε* = max(0, −D⁻) from autograd; also the core inequality −⟨∇L_CE, R⟩ ≤ B_T(R)."""
    assume(min_abs_preactivation(p.mlp, p.k, p.A, p.x) > KINK_TOL)
    G = ce_grad(p.mlp, p.k, p.A, p.x, p.labels)
    eps = stationarity_slack(one_sided_derivative(G, p.R, lam1, lam2))
    B = compute_budget(p.R, p.v, lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x))
    cert = stationarity_certificate(p.R, B, lam1, lam2, eps=eps, S=p.S,)
    sc = loss_scale(p.logits()) + cert.lhs
    assert cert.lhs <= cert.rhs + 1e-10 + 1e-9 * sc
    core = -float((G * p.R).sum())
    assert core <= B.value + 1e-10 + 1e-9 * max(abs(core), B.value, sc)


@given(certification_problems(), st.data(), st.floats(1e-3, 10.0))
def test_m_thm_4_7_deterministic_skeleton(p, data, lam2):
    """‖R‖_F² ≤ (B_T + ε + 2λ2|⟨S,R⟩|)/(2λ2) with ε = max(0, −D⁻) of J₂ along −R."""
    g = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    R = torch.as_tensor(g.normal(size=p.A.shape))
    S = p.A - R
    assume(min_abs_preactivation(p.mlp, p.k, p.A, p.x) > KINK_TOL)
    G = ce_grad(p.mlp, p.k, p.A, p.x, p.labels)
    d_minus = -float((G * R).sum()) - 2 * lam2 * float((p.A * R).sum())
    B = compute_budget(R, p.v, lipschitz_L3(p.mlp, p.k, S, R, p.x))
    cert = frobenius_stationarity_certificate(S, R, B, lam2, eps=max(0.0, -d_minus),
                                              scale=loss_scale(p.logits()) / lam2)
    assert_certificate_holds(cert)


@given(certification_problems(), log_lams, log_lams)
def test_zero_budget_means_identical_logits_on_T(p, lam1, lam2):
    """Trap T24: R supported on inputs that are dead for every s ⇒ B_T = 0, logits unchanged."""
    dead = (p.v == 0).all(dim=0)
    R = torch.where(dead[None, :], p.A, torch.zeros_like(p.A))
    S = p.A - R
    B = compute_budget(R, p.v, lipschitz_L0(p.mlp, p.k))
    assert B.value == 0.0
    assert torch.allclose(p.logits(S), p.logits(p.A), rtol=0, atol=1e-12 * (1 + float(
        p.logits().abs().max())))
    drop = elastic_penalty(p.A, lam1, lam2) - elastic_penalty(S, lam1, lam2)
    assert math.isclose(drop, lam2 * float((R * R).sum()) + lam1 * float(R.abs().sum()),
                        rel_tol=1e-9, abs_tol=1e-12)


# ------------------------------------------------------------------ estimates are labelled
def test_estimated_lipschitz_gives_uncertified_results():
    from certkit import LipschitzBound

    R, V = torch.randn(3, 4), torch.randn(5, 4)
    B = compute_budget(R, V, LipschitzBound((1.0,), certified=False, method="estimate:secant"))
    c = elastic_net_certificate(R, B, 0.1, 0.1)
    assert not c.certified and c.label == "estimated"
    assert not ce_path_bound(3.0).certified  # a bare float has unknown provenance


# ------------------------------------------------------------------ negative controls
@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_negative_control_too_small_lipschitz_is_caught(activation):
    """With L_s = 0.5·L3 hypothesis finds a violation of M-Lemma 5.1 (logit step (a))."""
    from hypothesis import find, settings

    def violated(p):
        L3 = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
        if L3.max == 0:
            return False
        from certkit import LipschitzBound

        small = LipschitzBound(tuple(0.5 * v for v in L3.values), certified=True, method="L3")
        B = compute_budget(p.R, p.v, small)
        ms = margin_stability(p.logits(), B, p.labels, logits_after=p.logits(p.S))
        return ms.max_logit_excess > 1e-8

    p = find(certification_problems(activation=activation, theta=0.0), violated,
             settings=settings(max_examples=2000, database=None, derandomize=True))
    assert violated(p)


def test_negative_control_too_small_lipschitz_breaks_the_ce_bound():
    """The CE bound itself fails when L_s is scaled down by 10."""
    from hypothesis import find, settings

    from certkit import LipschitzBound

    def violated(p):
        L3 = lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)
        small = LipschitzBound(tuple(0.1 * v for v in L3.values), certified=True, method="L3")
        cert = ce_path_bound(compute_budget(p.R, p.v, small), 0.0,
                             observed=abs(p.ce(p.S) - p.ce(p.A)))
        return cert.holds is False

    find(certification_problems(theta=0.0), violated,
         settings=settings(max_examples=3000, database=None, derandomize=True))


def test_negative_control_overlapping_supports_raise_and_would_violate():
    """THEORY §2.2.4: scalar layer S = 1, R = −1 (A = 0); the mask theorem must reject it."""
    from certkit import PreconditionError

    S, R = torch.ones(1, 1), -torch.ones(1, 1)
    with pytest.raises(PreconditionError, match="overlap"):
        elastic_net_certificate(R, 0.0, 1.0, 0.0, S=S)
    with pytest.raises(ValueError):  # PreconditionError is a ValueError
        prune_restore_certificate(S, torch.zeros(1, 1), R, 0.0, 1.0, 0.0)
    # bypassing the check: v = 0 so B_T = 0 and CE is unchanged, but the ℓ1 term *increases*
    lam1, theta = 1.0, 0.0
    unchecked = elastic_net_certificate(R, 0.0, lam1, 0.0, theta=theta,
                                        observed=lam1 * abs(1.0 - theta) - 0.0)
    assert unchecked.holds is False and "not verified" in unchecked.assumptions[0]
