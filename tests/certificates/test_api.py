"""Certificate objects: JSON round trip, tolerance rule, kinds, and bad input."""

import json
import math

import numpy as np
import pytest
import torch

from certkit import Certificate, LipschitzBound, PreconditionError, compute_budget
from certkit.certificates import (
    MaskStep,
    ce_path_bound,
    certificate_margin,
    elastic_net_certificate,
    frobenius_certificate,
    margin_stability,
    multilayer_certificate,
    multilayer_margin_stability,
    prune_restore_certificate,
    restoration_criterion,
    stationarity_certificate,
    weighted_elastic_net_certificate,
)


def _mask_pair():
    A = torch.arange(1.0, 13.0, dtype=torch.float64).reshape(3, 4)
    i, j = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    M = (i + j) % 2 == 0  # checkerboard
    return A * M, A * ~M


def test_json_round_trip_and_labels():
    S, R = _mask_pair()
    B = compute_budget(R, torch.randn(5, 4), LipschitzBound((2.0,), certified=True, method="L0"))
    cert = elastic_net_certificate(R, B, 0.1, 0.2, S=S, observed=-1.0)
    d = json.loads(cert.to_json())
    assert d["result"] == "M-Thm 5.4" and d["certified"] and d["label"] == "certified"
    assert d["holds"] == cert.holds and math.isclose(d["slack"], cert.rhs - cert.lhs)
    assert "verified" in d["assumptions"][0] and d["lipschitz_method"] == "L0"
    assert set(d["details"]) >= {"budget", "delta_J_bound", "certificate_margin"}
    assert json.loads(json.dumps(margin_stability(torch.randn(4, 3), 0.1, [0, 1, 2, 0],
                                                  logits_after=torch.randn(4, 3)).to_dict()))


def test_kinds():
    assert ce_path_bound(1.0).kind == "bound" and ce_path_bound(1.0).holds is None
    assert ce_path_bound(1.0, observed=0.5).kind == "check"
    S, R = _mask_pair()
    c = elastic_net_certificate(R, 0.0, 0.0, 1.0, S=S)
    assert c.kind == "condition" and c.holds  # B = 0 < reward: certified decrease
    assert math.isclose(certificate_margin(R, 0.0, 0.0, 1.0), float((R * R).sum()))
    # conditions are strict: B_T == reward is not a certified decrease
    assert elastic_net_certificate(torch.zeros(2, 2), 0.0, 1.0, 1.0).holds is False


def test_tolerance_rule():
    c = Certificate("x", "", "check", 1.0 + 5e-10, 1.0, True)
    assert c.holds  # within atol + rtol·max(|lhs|, |rhs|)
    assert not Certificate("x", "", "check", 1.0 + 1e-6, 1.0, True).holds
    assert Certificate("x", "", "check", 1.0 + 1e-6, 1.0, True, scale=1e4).holds


def test_weighted_matches_constant_and_uses_only_supp_R():
    S, R = _mask_pair()
    a = elastic_net_certificate(R, 0.3, 0.1, 0.2, S=S, theta=0.4, observed=0.0)
    b = weighted_elastic_net_certificate(R, 0.3, 0.1, 0.2, S=S, theta=0.4, observed=0.0)
    assert (a.lhs, a.rhs) == (b.lhs, b.rhs)
    G = torch.full_like(S, 0.1)
    G[S != 0] = 1e6  # weights off supp(R) are irrelevant
    c = weighted_elastic_net_certificate(R, 0.3, G, 0.2, S=S, theta=0.4, observed=0.0)
    assert math.isclose(c.rhs, a.rhs, rel_tol=1e-12)


def test_prune_restore_bookkeeping_is_verified():
    S, R = _mask_pair()
    Q = R * (torch.arange(4) < 2)
    P = R - Q
    A = S + R
    prune_restore_certificate(S, Q, P, 0.1, 0.1, 0.1, A=A)
    with pytest.raises(PreconditionError, match="original entries"):
        prune_restore_certificate(S, 2 * Q, P, 0.1, 0.1, 0.1, A=A)   # Trap T14
    with pytest.raises(PreconditionError, match="overlap"):
        prune_restore_certificate(S, Q + S, P, 0.1, 0.1, 0.1)
    crit = restoration_criterion(Q, P, 5.0, 1.0, 0.0, 0.0)
    assert crit.holds and crit.kind == "condition"


def test_frobenius_cross_bound_must_bound_the_inner_product():
    S, R = torch.ones(2, 2), torch.ones(2, 2)
    with pytest.raises(PreconditionError, match="cross_bound"):
        frobenius_certificate(S, R, 0.0, 1.0, cross_bound=1.0)
    assert frobenius_certificate(S, R, 0.0, 1.0, cross_bound=4.0).details["inner_SR"] == 4.0


@pytest.mark.parametrize("call, match", [
    (lambda: ce_path_bound(-1.0), "budget == -1.0"),
    (lambda: ce_path_bound(1.0, theta=1.5), "theta == 1.5"),
    (lambda: ce_path_bound(float("nan")), "budget == nan"),
    (lambda: elastic_net_certificate(np.ones((2, 2)), 1.0, -1.0, 0.0), "lam1 == -1.0"),
    (lambda: elastic_net_certificate(np.ones(2), 1.0, 0.0, 0.0), "R must be 2-D"),
    (lambda: elastic_net_certificate(np.ones((2, 2)), 1.0, 0.0, 0.0, S=np.ones((3, 2))),
     "same shape"),
    (lambda: weighted_elastic_net_certificate(np.ones((2, 2)), 1.0, -np.ones((2, 2)), 0.0),
     "gamma1 must be entrywise >= 0"),
    (lambda: stationarity_certificate(np.ones((2, 2)), 1.0, 0.0, 0.0, eps=-1.0), "eps == -1.0"),
    (lambda: margin_stability(np.ones((3, 2)), np.ones(4)), r"eta must have shape \(\|T\|,\)"),
    (lambda: margin_stability(np.ones((3, 2)), -1.0), "eta must be >= 0"),
    (lambda: margin_stability(np.ones((3, 2)), 1.0, [0, 1, 5]), r"labels must lie in \[0, K\)"),
    (lambda: margin_stability(np.ones(3), 1.0), "logits must be 2-D"),
    (lambda: multilayer_certificate([]), "at least one MaskStep"),
    (lambda: multilayer_certificate([("R", 1.0)]), "must be a MaskStep"),
    (lambda: multilayer_margin_stability(np.ones((2, 2)), []), "at least one step"),
])
def test_bad_input_is_rejected(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_multilayer_overlap_is_rejected_per_step():
    S, R = _mask_pair()
    with pytest.raises(PreconditionError, match="steps\\[0\\].R"):
        multilayer_certificate([MaskStep(R, 0.1, 0.1, 0.1, S=S + R)])
